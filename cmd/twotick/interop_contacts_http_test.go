package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// needCurl fails the test if curl is missing and interoperability clients
// are required (make test installs it), and skips it otherwise.
func needCurl(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("interoperability test: skipped with -short")
	}
	path, err := exec.LookPath("curl")
	if err == nil {
		return path
	}
	if requireInterop() {
		t.Fatal("curl missing (apt-get install curl)")
	}
	t.Skip("curl missing (apt-get install curl)")
	return ""
}

// TestInteropContactsCurl runs README's curl command for the HTTPS
// address-book upload against the real binary: a vCard file with a
// registered number, an unregistered one and a line that is no number;
// then the same upload with a wrong password, and a CSV body.
func TestInteropContactsCurl(t *testing.T) {
	curl := needCurl(t)
	httpAddr := freeAddrs(t, 1)[0]
	srv := startTwotick(t, fmt.Sprintf("[contacts]\nhttp_addr = %q\n", httpAddr))
	srv.addUser(t, "+12025550101", "alice-secret")
	bob := srv.addUser(t, "+12025550102", "bob-secret")
	carol := srv.addUser(t, "+12025550103", "carol-secret")
	waitAccountLogTaken(t, srv.db, 15*time.Second)

	dir := t.TempDir()
	vcf := filepath.Join(dir, "contacts.vcf")
	err := os.WriteFile(vcf, []byte("BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Bob Smith\r\n"+
		"TEL;TYPE=CELL:(202) 555-0102\r\nEND:VCARD\r\n"+
		"BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Nobody\r\nTEL:+1 202 555 0199\r\n"+
		"TEL:call me\r\nEND:VCARD\r\n"), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	url := "https://" + httpAddr + "/contacts"
	upload := func(user, contentType, body string) (int, []byte) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		// As in README, with -k for the generated certificate.
		cmd := exec.CommandContext(ctx, curl, "--silent", "--show-error", "--fail-with-body",
			"-k", "-u", user, "-H", "Content-Type: "+contentType, "--data-binary", body, url)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		var exit *exec.ExitError
		switch {
		case err == nil:
			return 0, stdout.Bytes()
		case errors.As(err, &exit):
			return exit.ExitCode(), stdout.Bytes()
		}
		t.Fatalf("curl: %v: %s", err, &stderr)
		return 0, nil
	}
	type answer struct {
		Ver     string `json:"ver"`
		Matches []struct {
			Number string `json:"number"`
			JID    string `json:"jid"`
		} `json:"matches"`
		Skipped int `json:"skipped"`
	}
	decode := func(out []byte) answer {
		t.Helper()
		var a answer
		if err := json.Unmarshal(out, &a); err != nil {
			t.Fatalf("answer %q: %v", out, err)
		}
		return a
	}
	jids := func(a answer) []string {
		var l []string
		for _, m := range a.Matches {
			l = append(l, m.JID)
		}
		slices.Sort(l)
		return l
	}

	code, out := upload("+12025550101:alice-secret", "text/vcard", "@"+vcf)
	if code != 0 {
		t.Fatalf("vCard upload: curl exit %d: %s", code, out)
	}
	a := decode(out)
	if !slices.Equal(jids(a), []string{bob}) || a.Skipped != 1 || a.Ver == "" {
		t.Errorf("vCard upload answered %s; want %s alone, 1 skipped and a ver", out, bob)
	}

	// --fail-with-body: exit 22 on an HTTP error, with the body printed.
	if code, out := upload("+12025550101:wrong", "text/vcard", "@"+vcf); code != 22 {
		t.Errorf("wrong password: curl exit %d (%s), want 22 for the 401", code, out)
	}

	code, out = upload("+12025550101@localhost:alice-secret", "text/csv",
		"number,name\n(202) 555-0102,Bob\n+12025550103,Carol\n")
	if code != 0 {
		t.Fatalf("CSV upload by bare JID: curl exit %d: %s", code, out)
	}
	if a := decode(out); !slices.Equal(jids(a), []string{bob, carol}) || a.Skipped != 0 {
		t.Errorf("CSV upload answered %s; want %s and %s", out, bob, carol)
	}
	srv.stop(t)
}
