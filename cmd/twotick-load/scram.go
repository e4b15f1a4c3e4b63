package main

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"strconv"
	"strings"
	"sync"
)

// scramMech describes one SCRAM family member (RFC 5802, RFC 7677).
type scramMech struct {
	name string
	hash func() hash.Hash
}

var (
	scramSHA1   = scramMech{name: "SCRAM-SHA-1", hash: sha1.New}
	scramSHA256 = scramMech{name: "SCRAM-SHA-256", hash: sha256.New}
)

// scramKeys are the values derived from a password with PBKDF2. Deriving them
// costs thousands of HMAC rounds, which would make the load generator, not
// the server, the limit on login rate; they are therefore cached.
type scramKeys struct {
	clientKey []byte
	storedKey []byte
	serverKey []byte
}

type scramCacheKey struct {
	mech, password, salt string
	iterations           int
}

// scramCache maps (mechanism, password, salt, iterations) to derived keys.
// It is safe for concurrent use. A server that gives every account the same
// salt (twotick --same-salt, or the account files compare.sh writes for
// Prosody and ejabberd) makes PBKDF2 run once per run.
type scramCache struct {
	mu sync.Mutex
	m  map[scramCacheKey]*scramKeys // guarded by mu
}

func newSCRAMCache() *scramCache { return &scramCache{m: make(map[scramCacheKey]*scramKeys)} }

func (c *scramCache) keys(m scramMech, password string, salt []byte, iter int) (*scramKeys, error) {
	k := scramCacheKey{m.name, password, string(salt), iter}
	c.mu.Lock()
	ks, ok := c.m[k]
	c.mu.Unlock()
	if ok {
		return ks, nil
	}
	salted, err := pbkdf2.Key(m.hash, password, salt, iter, m.hash().Size())
	if err != nil {
		return nil, fmt.Errorf("deriving salted password: %w", err)
	}
	ks = &scramKeys{
		clientKey: hmacSum(m, salted, "Client Key"),
		serverKey: hmacSum(m, salted, "Server Key"),
	}
	h := m.hash()
	h.Write(ks.clientKey)
	ks.storedKey = h.Sum(nil)
	c.mu.Lock()
	c.m[k] = ks
	c.mu.Unlock()
	return ks, nil
}

func hmacSum(m scramMech, key []byte, msg string) []byte {
	h := hmac.New(m.hash, key)
	h.Write([]byte(msg))
	return h.Sum(nil)
}

// scramClient runs one SCRAM exchange without channel binding ("n,,").
type scramClient struct {
	mech     scramMech
	cache    *scramCache
	user     string
	password string
	nonce    string

	clientFirstBare string
	serverSignature []byte
}

func newSCRAMClient(m scramMech, cache *scramCache, user, password string) *scramClient {
	var b [18]byte
	_, _ = rand.Read(b[:])
	return &scramClient{mech: m, cache: cache, user: user, password: password,
		nonce: base64.RawStdEncoding.EncodeToString(b[:])}
}

// first returns the client-first-message.
func (s *scramClient) first() string {
	u := strings.NewReplacer("=", "=3D", ",", "=2C").Replace(s.user)
	s.clientFirstBare = "n=" + u + ",r=" + s.nonce
	return "n,," + s.clientFirstBare
}

// final answers the server-first-message with the client-final-message.
func (s *scramClient) final(serverFirst string) (string, error) {
	attrs := parseSCRAMAttrs(serverFirst)
	nonce, salt64, iterText := attrs["r"], attrs["s"], attrs["i"]
	if !strings.HasPrefix(nonce, s.nonce) || len(nonce) == len(s.nonce) {
		return "", errors.New("scram: server nonce does not extend the client nonce")
	}
	salt, err := base64.StdEncoding.DecodeString(salt64)
	if err != nil {
		return "", fmt.Errorf("scram: bad salt: %w", err)
	}
	iter, err := strconv.Atoi(iterText)
	if err != nil || iter < 1 {
		return "", fmt.Errorf("scram: bad iteration count %q", iterText)
	}
	ks, err := s.cache.keys(s.mech, s.password, salt, iter)
	if err != nil {
		return "", err
	}

	withoutProof := "c=biws,r=" + nonce
	authMessage := s.clientFirstBare + "," + serverFirst + "," + withoutProof
	sig := hmacSum(s.mech, ks.storedKey, authMessage)
	proof := make([]byte, len(sig))
	subtle.XORBytes(proof, ks.clientKey, sig)
	s.serverSignature = hmacSum(s.mech, ks.serverKey, authMessage)
	return withoutProof + ",p=" + base64.StdEncoding.EncodeToString(proof), nil
}

// verify checks the server-final-message, proving the server knew the keys.
func (s *scramClient) verify(serverFinal string) error {
	attrs := parseSCRAMAttrs(serverFinal)
	if e, ok := attrs["e"]; ok {
		return fmt.Errorf("scram: server error %q", e)
	}
	v, err := base64.StdEncoding.DecodeString(attrs["v"])
	if err != nil || !hmac.Equal(v, s.serverSignature) {
		return errors.New("scram: server signature does not match")
	}
	return nil
}

func parseSCRAMAttrs(msg string) map[string]string {
	out := make(map[string]string)
	for _, part := range strings.Split(msg, ",") {
		if len(part) >= 2 && part[1] == '=' {
			out[part[:1]] = part[2:]
		}
	}
	return out
}
