package auth

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"fmt"
	"hash"
)

// Hash names accepted by Store.Credentials, as they appear in the SCRAM
// mechanism names.
const (
	SHA1   = "SHA-1"
	SHA256 = "SHA-256"
)

// DefaultIterations is the PBKDF2 iteration count used when none is set. RFC
// 7677 § 4 asks for at least 4096.
const DefaultIterations = 4096

// saltLen is the length of a generated salt in bytes.
const saltLen = 16

// Cred is one account's SCRAM credential for one hash function (RFC 5802
// § 3). StoredKey lets the server verify a client proof and ServerKey lets it
// prove itself; neither lets anyone log in without an offline attack on the
// password, unlike the SaltedPassword, which is never kept.
type Cred struct {
	Hash       string // SHA1 or SHA256
	Salt       []byte
	Iterations int
	StoredKey  []byte
	ServerKey  []byte
}

// hashFunc returns the constructor for a hash name, or nil.
func hashFunc(name string) func() hash.Hash {
	switch name {
	case SHA1:
		return sha1.New
	case SHA256:
		return sha256.New
	}
	return nil
}

// NewCredentials derives SHA-1 and SHA-256 credentials for password with
// fresh random salts. iterations below 1 means DefaultIterations. It costs two
// PBKDF2 runs (about a millisecond each at 4096 iterations).
func NewCredentials(password string, iterations int) (sha1Cred, sha256Cred Cred) {
	return deriveCred(SHA1, password, randomSalt(), iterations),
		deriveCred(SHA256, password, randomSalt(), iterations)
}

// deriveCred computes the credential for password with the given salt.
func deriveCred(name, password string, salt []byte, iterations int) Cred {
	if iterations < 1 {
		iterations = DefaultIterations
	}
	fn := hashFunc(name)
	salted := saltedPassword(fn, password, salt, iterations)
	clientKey := hmacSum(fn, salted, []byte("Client Key"))
	stored := fn()
	stored.Write(clientKey)
	return Cred{
		Hash:       name,
		Salt:       salt,
		Iterations: iterations,
		StoredKey:  stored.Sum(nil),
		ServerKey:  hmacSum(fn, salted, []byte("Server Key")),
	}
}

// saltedPassword is Hi(Normalize(password), salt, i) of RFC 5802 § 3.
//
// TODO: RFC 5802 asks for SASLprep (RFC 4013) of the password; we use the
// bytes as given, like most clients do for ASCII passwords. A client that
// normalises a non-ASCII password differently will fail to log in.
func saltedPassword(fn func() hash.Hash, password string, salt []byte, iterations int) []byte {
	k, err := pbkdf2.Key(fn, password, salt, iterations, fn().Size())
	if err != nil {
		// Only FIPS 140 mode refuses parameters, and ours are fixed and valid.
		panic(fmt.Sprintf("auth: pbkdf2: %v", err))
	}
	return k
}

func hmacSum(fn func() hash.Hash, key, msg []byte) []byte {
	m := hmac.New(fn, key)
	m.Write(msg)
	return m.Sum(nil)
}

// randomSalt returns a fresh salt.
func randomSalt() []byte {
	b := make([]byte, saltLen)
	rand.Read(b)
	return b
}
