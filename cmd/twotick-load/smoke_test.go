package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestSmoke builds ../twotick, starts it on loopback with a temporary
// configuration and runs every scenario at a tiny size, so that the load
// generator keeps working against the server. It skips, saying why, while
// the server cannot yet build, import accounts or serve.
func TestSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("smoke test builds and runs the server; skipped under -short")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "twotick")
	if out, err := exec.Command("go", "build", "-o", bin, "../twotick").CombinedOutput(); err != nil {
		t.Skipf("twotick does not build yet, so the smoke test cannot run: %v\n%s", err, out)
	}
	addr := startTwotick(t, bin, dir)

	base := []string{"--addr", addr, "--domain", "localhost", "--user-format", "+1202555%04d",
		"--user-start", "100", "--password", "smoke-password", "--tls=false", "--max-duration", "60s",
		"--server", "twotick", "--drain", "10s"}
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"idle", []string{"--scenario", "idle", "--sessions", "5,10", "--settle", "0s"}},
		{"chat", []string{"--scenario", "chat", "--pairs", "5", "--rate", "50", "--duration", "2s"}},
		{"offline", []string{"--scenario", "offline", "--users", "5", "--messages", "10"}},
		{"contacts", []string{"--scenario", "contacts", "--uploads", "5", "--concurrency", "2",
			"--book-size", "50", "--population", "30", "--match-share", "0.2",
			"--unregistered", "1000"}},
		{"contacts-open", []string{"--scenario", "contacts", "--uploads", "5",
			"--upload-rate", "20", "--book-size", "50", "--population", "30",
			"--match-share", "0.2", "--unregistered", "1000"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := parseFlags(append(append([]string{}, base...), tc.args...))
			if err != nil {
				t.Fatal(err)
			}
			cfg.jsonPath = filepath.Join(dir, "results.jsonl")
			cfg.plotPath = filepath.Join(dir, tc.name+".png")
			ctx, cancel := context.WithTimeout(context.Background(), cfg.maxDuration)
			defer cancel()
			res, err := run(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
			if err != nil {
				t.Fatalf("%s scenario: %v", tc.name, err)
			}
			if err := writeOutputs(cfg, res, io.Discard); err != nil {
				t.Fatal(err)
			}
			for _, m := range res.metrics {
				if (m.name == "undelivered_in_drain" || m.name == "duplicated" || m.name == "kept_after_ack" ||
					m.name == "logins_failed" || m.name == "uploads_failed" ||
					m.name == "uploads_mismatched") && m.value != 0 {
					t.Errorf("%s = %v, want 0", m.name, m.value)
				}
			}
		})
	}
}

// startTwotick writes a configuration, imports the accounts and starts the
// server, returning its c2s address. It skips the test when any step is
// not yet possible.
func startTwotick(t *testing.T, bin, dir string) string {
	t.Helper()
	c2s, metrics := freeAddr(t), freeAddr(t)
	conf := filepath.Join(dir, "twotick.toml")
	err := os.WriteFile(conf, []byte(fmt.Sprintf(`domain = "localhost"
data_dir = %q
[c2s]
starttls_addr = %q
direct_tls_addr = ""
allow_plaintext_loopback = true
[metrics]
addr = %q
[storage]
synchronous = "full"
`, dir, c2s, metrics)), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	var csv strings.Builder
	for i := 100; i < 130; i++ {
		fmt.Fprintf(&csv, "+1202555%04d,smoke-password\n", i)
	}
	csvPath := filepath.Join(dir, "accounts.csv")
	if err := os.WriteFile(csvPath, []byte(csv.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "user", "import", "--config", conf, csvPath,
		"--same-salt").CombinedOutput()
	if err != nil {
		t.Skipf("twotick cannot import accounts yet "+
			"(user import --config FILE CSV --same-salt): %v\n%s", err, out)
	}

	cmd := exec.Command(bin, "serve", "--config", conf)
	logf, err := os.Create(filepath.Join(dir, "serve.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Skipf("twotick cannot be started: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		logf.Close()
	})

	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			exited <- err
			log, _ := os.ReadFile(filepath.Join(dir, "serve.log"))
			t.Skipf("twotick serve exited before listening (%v), so it cannot serve yet:\n%s", err, log)
		default:
		}
		if c, err := net.DialTimeout("tcp", c2s, 200*time.Millisecond); err == nil {
			c.Close()
			return c2s
		}
		time.Sleep(50 * time.Millisecond) // polling for the listener, bounded by deadline
	}
	t.Skipf("twotick serve did not listen on %s within 20s", c2s)
	return ""
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
