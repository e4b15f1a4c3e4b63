package main

import (
	"bufio"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Account fixtures. Creating 20,000 accounts through prosodyctl or
// ejabberdctl starts an interpreter per account and takes the better part
// of an hour, and in-band registration gives every account its own random
// salt, which would make the load generator run PBKDF2 at every login. The
// accounts subcommand therefore writes the accounts directly, with one salt
// shared by all of them:
//
//   - prosody: Prosody's internal_hashed account files
//     (DATA/HOST/accounts/USER.dat), which ejabberd can also read with
//     `ejabberdctl import_prosody DATA`;
//   - ejabberd: Erlang terms for ejabberd_auth:try_register over RPC (the
//     Debian ejabberd lacks the Lua reader that import_prosody needs): the
//     first term is the shared #scram{} record, then one {User, Host} each;
//   - csv: "number,password" lines for `twotick user import --same-salt`.

// fixtureSalt is the salt every Prosody account shares; it only has to be
// the same for all of them, not secret.
const fixtureSalt = "twotick-load-fixture-salt"

func runAccounts(args []string) error {
	fs := flag.NewFlagSet("twotick-load accounts", flag.ContinueOnError)
	kind := fs.String("kind", "prosody",
		"prosody (account files under --out), ejabberd or csv (a file at --out)")
	out := fs.String("out", "", "directory (prosody: the data_path) or file (csv)")
	count := fs.Int("count", 100, "accounts to write")
	format := fs.String("user-format", "user%d", "fmt pattern of account names")
	start := fs.Int("user-start", 1, "number of the first account")
	password := fs.String("password", "password", "password of every account")
	domain := fs.String("domain", "localhost", "XMPP domain")
	iter := fs.Int("iterations", 4096, "PBKDF2 iterations (prosody)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" || *count < 1 {
		return fmt.Errorf("accounts: --out and a positive --count are required")
	}
	names := make([]string, *count)
	for i := range names {
		names[i] = fmt.Sprintf(*format, *start+i)
	}
	switch *kind {
	case "prosody":
		return writeProsodyAccounts(*out, *domain, *password, *iter, names)
	case "csv":
		return writeCSVAccounts(*out, *password, names)
	case "ejabberd":
		return writeEjabberdAccounts(*out, *domain, *password, *iter, names)
	}
	return fmt.Errorf("accounts: unknown --kind %q", *kind)
}

// prosodyEncode escapes a path component as Prosody's datamanager does:
// every byte that is not a letter or digit becomes %xx.
func prosodyEncode(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02x", c)
		}
	}
	return b.String()
}

// sha1Keys derives SCRAM-SHA-1's StoredKey and ServerKey (RFC 5802 § 3).
func sha1Keys(password string, iter int) (stored, server []byte, err error) {
	salted, err := pbkdf2.Key(sha1.New, password, []byte(fixtureSalt), iter, sha1.Size)
	if err != nil {
		return nil, nil, fmt.Errorf("deriving keys: %w", err)
	}
	mac := func(msg string) []byte {
		h := hmac.New(sha1.New, salted)
		h.Write([]byte(msg))
		return h.Sum(nil)
	}
	sk := sha1.Sum(mac("Client Key"))
	return sk[:], mac("Server Key"), nil
}

func writeEjabberdAccounts(path, domain, password string, iter int, names []string) error {
	stored, server, err := sha1Keys(password, iter)
	if err != nil {
		return err
	}
	b64 := base64.StdEncoding.EncodeToString
	var b strings.Builder
	fmt.Fprintf(&b, "{scram, <<\"%s\">>, <<\"%s\">>, <<\"%s\">>, sha, %d}.\n",
		b64(stored), b64(server), b64([]byte(fixtureSalt)), iter)
	for _, n := range names {
		fmt.Fprintf(&b, "{<<\"%s\">>, <<\"%s\">>}.\n", strings.ToLower(n), domain)
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

func writeProsodyAccounts(dataDir, domain, password string, iter int, names []string) error {
	stored, server, err := sha1Keys(password, iter)
	if err != nil {
		return err
	}
	body := fmt.Sprintf("return {\n\t[\"iteration_count\"] = %d;\n\t[\"salt\"] = %q;\n"+
		"\t[\"stored_key\"] = %q;\n\t[\"server_key\"] = %q;\n};\n",
		iter, fixtureSalt, hex.EncodeToString(stored), hex.EncodeToString(server))

	dir := filepath.Join(dataDir, prosodyEncode(domain), "accounts")
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("creating %s: %w", dir, err)
	}
	for _, n := range names {
		p := filepath.Join(dir, prosodyEncode(strings.ToLower(n))+".dat")
		if err := os.WriteFile(p, []byte(body), 0o640); err != nil {
			return fmt.Errorf("writing account %s: %w", n, err)
		}
	}
	return nil
}

func writeCSVAccounts(path, password string, names []string) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("creating %s: %w", path, err)
	}
	w := bufio.NewWriter(f)
	for _, n := range names {
		fmt.Fprintf(w, "%s,%s\n", n, password)
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return f.Close()
}
