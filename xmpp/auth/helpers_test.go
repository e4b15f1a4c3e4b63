package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/twotick/twotick/xmpp/storage"
)

// newTestStore opens a Store on a fresh database in t's temporary directory.
func newTestStore(t testing.TB) *Store {
	t.Helper()
	ctx := context.Background()
	db, err := storage.Open(ctx, filepath.Join(t.TempDir(), "auth.db"), "off")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	s, err := OpenStore(ctx, db, "example.net")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// tlsPair completes a real TLS handshake over an in-memory pipe and returns
// the server's and the client's view of the connection.
func tlsPair(t testing.TB, version uint16) (server, client tls.ConnectionState) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "example.net"},
		DNSNames:     []string{"example.net"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert := tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	a, b := net.Pipe()
	t.Cleanup(func() { a.Close(); b.Close() })
	srv := tls.Server(a, &tls.Config{Certificates: []tls.Certificate{cert},
		MinVersion: version, MaxVersion: version})
	cli := tls.Client(b, &tls.Config{InsecureSkipVerify: true, ServerName: "example.net",
		MinVersion: version, MaxVersion: version})
	errc := make(chan error, 1)
	go func() { errc <- srv.Handshake() }()
	if err := cli.Handshake(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	return srv.ConnectionState(), cli.ConnectionState()
}
