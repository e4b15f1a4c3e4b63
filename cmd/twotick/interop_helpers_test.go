package main

// Helpers for the interoperability tests in interop_test.go: finding the
// third-party clients, building and running the real twotick binary (or
// Prosody, as a reference that keeps the client scripts known-good), and
// running client scripts as child processes that the test talks to over
// standard input and output.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const (
	// debianPython is the interpreter that python3-slixmpp installs into.
	// The python3 first on PATH may be another one (pyenv) without it.
	debianPython = "/usr/bin/python3"

	// interopDir holds the client scripts, relative to this package.
	interopDir = "../../testdata/interop"

	// readyTimeout bounds the wait for a started server to accept TCP.
	readyTimeout = 30 * time.Second

	// stopTimeout bounds the wait for the server to exit after SIGTERM. The
	// server's own shutdown.timeout defaults to 10s; this leaves room.
	stopTimeout = 20 * time.Second
)

// requireInterop reports whether missing tools fail the test instead of
// skipping it: in CI, and wherever TWOTICK_REQUIRE_INTEROP=1 (make test).
func requireInterop() bool {
	return os.Getenv("CI") == "true" || os.Getenv("TWOTICK_REQUIRE_INTEROP") == "1"
}

// needClients skips or fails t unless slixmpp, Node.js and @xmpp/client
// are all installed, naming each one that is missing.
func needClients(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("interoperability test: skipped with -short")
	}

	var missing []string
	py := exec.Command(debianPython, "-c", "import slixmpp")
	if out, err := py.CombinedOutput(); err != nil {
		missing = append(missing, fmt.Sprintf(
			"slixmpp for %s (apt-get install python3-slixmpp): %v: %s",
			debianPython, err, bytes.TrimSpace(out)))
	}
	if _, err := exec.LookPath("node"); err != nil {
		missing = append(missing, "node (apt-get install nodejs)")
	}
	clientPkg := filepath.Join(interopDir, "node_modules", "@xmpp", "client", "package.json")
	if _, err := os.Stat(clientPkg); err != nil {
		missing = append(missing, "@xmpp/client (npm ci --prefix testdata/interop)")
	}
	if len(missing) == 0 {
		return
	}

	msg := "interoperability clients missing:\n  " + strings.Join(missing, "\n  ")
	if requireInterop() {
		t.Fatal(msg)
	}
	t.Skip(msg + "\n`make test` installs them.")
}

// xmppServer is a running server that the client scripts connect to.
type xmppServer struct {
	name   string
	domain string
	c2s    string // STARTTLS client listener, host:port

	// addUser creates the account for a phone number and returns its JID.
	addUser func(t *testing.T, phone, password string) string

	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd has been waited for
	err    error         // cmd.Wait's result, set before exited closes
	log    *lockedBuffer

	// db is the SQLite database of a twotick server, "" for others.
	db string
}

// startServer starts the server under test: twotick, or Prosody when
// TWOTICK_INTEROP_SERVER=prosody (a reference run that tells whether a
// failure lies in twotick or in a script).
func startServer(t *testing.T) *xmppServer {
	t.Helper()
	if os.Getenv("TWOTICK_INTEROP_SERVER") == "prosody" {
		return startProsody(t)
	}
	return startTwotick(t)
}

// buildTwotick builds this package's binary into a temporary directory.
// The build cache makes every build after the first in a run quick.
// TWOTICK_INTEROP_RACE=1 (make test) builds it with the race detector: a
// race the real clients provoke then makes the server exit with status 66
// instead of 0, and stop fails the test with the report in the log.
func buildTwotick(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "twotick")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	args := []string{"build", "-o", bin}
	if os.Getenv("TWOTICK_INTEROP_RACE") == "1" {
		args = append(args, "-race")
	}
	cmd := exec.CommandContext(ctx, goTool(), append(args, ".")...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building twotick: %v\n%s", err, out)
	}
	return bin
}

// goTool returns the go command of the toolchain running the tests.
func goTool() string {
	if goroot := os.Getenv("GOROOT"); goroot != "" {
		if p := filepath.Join(goroot, "bin", "go"); fileExists(p) {
			return p
		}
	}
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return "/usr/local/go/bin/go"
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// freeAddrs returns n distinct loopback addresses that were free a moment
// ago. Another process could take one before the server binds it; the
// server then fails to start and says so in its log.
func freeAddrs(t *testing.T, n int) []string {
	t.Helper()
	addrs := make([]string, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("finding a free port: %v", err)
		}
		defer l.Close()
		addrs = append(addrs, l.Addr().String())
	}
	return addrs
}

var jidPattern = regexp.MustCompile(`\S+@\S+`)

// startTwotick builds twotick, writes a configuration with free loopback
// ports and any extra TOML sections, and runs `twotick serve` until it
// accepts connections.
func startTwotick(t *testing.T, extra ...string) *xmppServer {
	t.Helper()
	bin := buildTwotick(t)
	dir := t.TempDir()
	addrs := freeAddrs(t, 3)
	config := filepath.Join(dir, "twotick.toml")
	text := fmt.Sprintf(`domain = "localhost"
data_dir = %q

[log]
level = "debug"

[c2s]
starttls_addr = %q
direct_tls_addr = %q

[metrics]
addr = %q
`, filepath.Join(dir, "data"), addrs[0], addrs[1], addrs[2]) + strings.Join(extra, "\n")
	if err := os.WriteFile(config, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}

	s := &xmppServer{name: "twotick", domain: "localhost", c2s: addrs[0],
		db: filepath.Join(dir, "data", "twotick.db")}
	s.addUser = func(t *testing.T, phone, password string) string {
		t.Helper()
		out := runCLI(t, bin, "user", "add", phone, "--password", password, "--config", config)
		jid := jidPattern.FindString(out)
		if jid == "" {
			t.Fatalf("twotick user add %q printed no JID: %q", phone, out)
		}
		return jid
	}
	s.start(t, exec.Command(bin, "serve", "--config", config))
	return s
}

// runCLI runs an administrative command and returns its standard output.
func runCLI(t *testing.T, bin string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\nstdout: %s\nstderr: %s",
			filepath.Base(bin), strings.Join(args, " "), err, &stdout, &stderr)
	}
	return stdout.String()
}

// start runs cmd as the server, logs its output to a buffer that is
// dumped if the test fails, and waits until the c2s port accepts TCP.
func (s *xmppServer) start(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	s.log = &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = s.log, s.log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", s.name, err)
	}
	s.cmd = cmd
	s.exited = make(chan struct{})
	go func() {
		s.err = cmd.Wait()
		close(s.exited)
	}()
	t.Cleanup(func() { s.kill(t) })
	dumpOnFailure(t, s.name+" log", s.log)

	if err := s.waitReady(readyTimeout); err != nil {
		t.Fatalf("%s did not become ready: %v", s.name, err)
	}
}

// waitReady polls the c2s port until it accepts a connection, the server
// exits, or the timeout passes.
func (s *xmppServer) waitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		conn, err := net.DialTimeout("tcp", s.c2s, time.Second)
		if err == nil {
			return conn.Close()
		}
		select {
		case <-s.exited:
			return fmt.Errorf("exited before listening: %v", s.err)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not accepting after %v: %w", s.c2s, timeout, err)
		}
	}
}

// stop sends SIGTERM and fails t unless the server exits with status 0
// within stopTimeout.
func (s *xmppServer) stop(t *testing.T) {
	t.Helper()
	start := time.Now()
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("sending SIGTERM to %s: %v", s.name, err)
	}
	select {
	case <-s.exited:
	case <-time.After(stopTimeout):
		t.Fatalf("%s still running %v after SIGTERM", s.name, stopTimeout)
	}
	if s.err != nil {
		t.Fatalf("%s exited after SIGTERM with %v, want status 0", s.name, s.err)
	}
	// SQLite checkpoints and removes the write-ahead log when the last
	// connection closes: a log left behind means a connection was not.
	if s.db != "" {
		if _, err := os.Stat(s.db + "-wal"); err == nil {
			t.Errorf("%s left %s-wal after a graceful stop: a database connection "+
				"was not closed", s.name, filepath.Base(s.db))
		}
	}
	t.Logf("%s stopped %v after SIGTERM", s.name, time.Since(start).Round(time.Millisecond))
}

// kill ends the server's process group if it is still running, so that a
// failed test leaves nothing behind.
func (s *xmppServer) kill(t *testing.T) {
	select {
	case <-s.exited:
		return
	default:
	}
	_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
		t.Errorf("%s survived SIGKILL", s.name)
	}
}

// startProsody runs Debian's Prosody with mod_offline and mod_smacks on
// loopback ports, in a temporary directory.
func startProsody(t *testing.T) *xmppServer {
	t.Helper()
	for _, tool := range []string{"prosody", "prosodyctl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("TWOTICK_INTEROP_SERVER=prosody needs %s: apt-get install prosody", tool)
		}
	}
	dir := t.TempDir()
	cert, key := writeSelfSigned(t, dir)
	c2s := freeAddrs(t, 1)[0]
	_, port, _ := net.SplitHostPort(c2s)
	config := filepath.Join(dir, "prosody.cfg.lua")
	text := fmt.Sprintf(`run_as_root = true
daemonize = false
pidfile = %[1]q
data_path = %[2]q
certificates = %[3]q
admin_shell_socket = %[4]q
log = { debug = "*console" }
interfaces = { "127.0.0.1" }
c2s_ports = { %[5]s }
c2s_direct_tls_ports = { }
s2s_ports = { }
modules_enabled = { "roster", "saslauth", "tls", "disco", "ping", "offline", "smacks", "carbons",
	"blocklist", "posix" }
authentication = "internal_hashed"
storage = "internal"
c2s_require_encryption = true
VirtualHost "localhost"
  ssl = { certificate = %[6]q, key = %[7]q }
`, filepath.Join(dir, "prosody.pid"), filepath.Join(dir, "data"), dir,
		filepath.Join(dir, "admin.sock"), port, cert, key)
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(config, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}

	s := &xmppServer{name: "prosody", domain: "localhost", c2s: c2s}
	s.addUser = func(t *testing.T, phone, password string) string {
		t.Helper()
		local := "+" + strings.Map(func(r rune) rune {
			if r >= '0' && r <= '9' {
				return r
			}
			return -1
		}, phone)
		runCLI(t, "prosodyctl", "--config", config, "register", local, s.domain, password)
		return local + "@" + s.domain
	}
	s.start(t, exec.Command("prosody", "--config", config, "-F"))
	return s
}

// writeSelfSigned writes an ECDSA P-256 certificate for localhost and
// its key into dir and returns their paths.
func writeSelfSigned(t *testing.T, dir string) (cert, key string) {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "localhost"},
		DNSNames:     []string{"localhost"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	cert, key = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
	if err := os.WriteFile(cert, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(key, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return cert, key
}

// lockedBuffer is a bytes.Buffer safe for the concurrent writes of a
// child's standard output and error.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer // guarded by mu
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// dumpOnFailure logs the buffer's content at the end of t if t failed.
func dumpOnFailure(t *testing.T, what string, b *lockedBuffer) {
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("---- %s ----\n%s---- end of %s ----", what, b.String(), what)
		}
	})
}

// client is a running client script.
type client struct {
	name   string
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	lines  chan string   // standard output, line by line; closed at EOF
	exited chan struct{} // closed when cmd has been waited for
	err    error         // cmd.Wait's result, set before exited closes
	output *lockedBuffer // everything it printed, for failure reports

	drainOnce sync.Once
}

// startClient runs a client script from testdata/interop. Its output is
// logged if the test fails, and it is killed when the test ends.
func startClient(t *testing.T, name, interpreter, script string, args ...string) *client {
	t.Helper()
	c := &client{
		name:   name,
		lines:  make(chan string, 64),
		exited: make(chan struct{}),
		output: &lockedBuffer{},
	}
	cmd := exec.Command(interpreter, append([]string{script}, args...)...)
	cmd.Dir = interopDir
	cmd.Stderr = c.output
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	c.cmd, c.stdin = cmd, stdin

	// The reader owns stdout; Wait runs only after it has seen EOF, as
	// os/exec requires for a pipe.
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(c.output, line)
			c.lines <- line
		}
		close(c.lines)
		c.err = cmd.Wait()
		close(c.exited)
	}()
	// A client's few lines are worth seeing with -v even when it passes:
	// they name the mechanism and TLS version it used.
	t.Cleanup(func() { t.Logf("%s output:\n%s", name, c.output.String()) })
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		c.drain()
		<-c.exited
	})
	return c
}

// drain discards the lines nobody waits for, so that the reader reaches
// EOF and the process is waited for.
func (c *client) drain() {
	c.drainOnce.Do(func() {
		go func() {
			for range c.lines {
			}
		}()
	})
}

// send writes one line to the client's standard input.
func (c *client) send(line string) error {
	_, err := io.WriteString(c.stdin, line+"\n")
	return err
}

// waitLine waits until the client prints a line containing want.
func (c *client) waitLine(want string, deadline time.Time) error {
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	for {
		select {
		case line, ok := <-c.lines:
			if !ok {
				<-c.exited
				return fmt.Errorf("%s exited (%v) before printing %q", c.name, c.err, want)
			}
			if strings.Contains(line, want) {
				return nil
			}
		case <-timer.C:
			return fmt.Errorf("%s printed no %q in time", c.name, want)
		}
	}
}

// wait waits for the client to exit and returns an error unless it
// exited with status 0 before the deadline.
func (c *client) wait(deadline time.Time) error {
	c.drain()
	select {
	case <-c.exited:
	case <-time.After(time.Until(deadline)):
		return fmt.Errorf("%s still running at the deadline", c.name)
	}
	var exit *exec.ExitError
	if errors.As(c.err, &exit) {
		return fmt.Errorf("%s failed with %v: %s", c.name, c.err, lastLine(c.output.String()))
	}
	return c.err
}

// lastLine returns the FAIL line of a script's output, or its last line.
func lastLine(out string) string {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	for _, l := range lines {
		if strings.Contains(l, "FAIL:") {
			return l
		}
	}
	return lines[len(lines)-1]
}
