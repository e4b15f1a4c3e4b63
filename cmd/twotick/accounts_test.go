package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twotick/twotick/conf"
	"github.com/twotick/twotick/roster"
	"github.com/twotick/twotick/xmpp/storage"
)

// testEnv returns a cmdEnv on a fresh database with the default
// configuration, and the buffers that collect its output.
func testEnv(t *testing.T) (*cmdEnv, *bytes.Buffer, *bytes.Buffer) {
	t.Helper()
	db, err := storage.Open(context.Background(), filepath.Join(t.TempDir(), "t.db"), "off")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	var out, errOut bytes.Buffer
	return &cmdEnv{Cfg: conf.Default(), DB: db, Stdin: strings.NewReader(""),
		Stdout: &out, Stderr: &errOut}, &out, &errOut
}

// run calls runUser or runBot with stdin and returns stdout and the error.
func run(t *testing.T, env *cmdEnv, stdin string, f func(context.Context, *cmdEnv, []string) error,
	args ...string) (string, error) {
	t.Helper()
	env.Stdin = strings.NewReader(stdin)
	out := env.Stdout.(*bytes.Buffer)
	out.Reset()
	err := f(context.Background(), env, args)
	return out.String(), err
}

func TestUserCommands(t *testing.T) {
	env, _, _ := testEnv(t)
	steps := []struct {
		name    string
		stdin   string
		args    []string
		wantOut string
		wantErr string
	}{
		{"add with flag after the number", "", []string{"add", "+1 (202) 555-0101", "--password", "pw"},
			"+12025550101@localhost\n", ""},
		{"add with password on stdin", "secret\n", []string{"add", "202-555-0102"},
			"+12025550102@localhost\n", ""},
		{"add existing", "", []string{"add", "+12025550101", "--password", "x"}, "", "already exists"},
		{"add invalid number", "", []string{"add", "12345", "--password", "x"}, "",
			`"12345" is not a valid phone number`},
		{"add without password", "", []string{"add", "+12025550103"}, "", "no password"},
		{"list", "", []string{"list"}, "+12025550101@localhost\n+12025550102@localhost\n", ""},
		{"passwd", "", []string{"passwd", "+12025550101", "--password", "new"},
			"+12025550101@localhost\n", ""},
		{"passwd unknown", "", []string{"passwd", "+12025550109", "--password", "new"}, "",
			"no such account"},
		{"del", "", []string{"del", "+1 202 555 0102"}, "deleted +12025550102@localhost\n", ""},
		{"del again", "", []string{"del", "+12025550102"}, "", "no such account"},
		{"list after del", "", []string{"list"}, "+12025550101@localhost\n", ""},
		{"unknown subcommand", "", []string{"frobnicate"}, "", "unknown subcommand"},
		{"no subcommand", "", nil, "", "missing subcommand"},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			out, err := run(t, env, s.stdin, runUser, s.args...)
			if s.wantErr == "" && err != nil || s.wantErr != "" &&
				(err == nil || !strings.Contains(err.Error(), s.wantErr)) {
				t.Fatalf("error %v, want one containing %q", err, s.wantErr)
			}
			if out != s.wantOut {
				t.Errorf("stdout %q, want %q", out, s.wantOut)
			}
		})
	}
}

func TestBotCommands(t *testing.T) {
	env, _, _ := testEnv(t)
	if _, err := run(t, env, "", runUser, "add", "+12025550101", "--password", "pw"); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name    string
		stdin   string
		args    []string
		wantOut string
		wantErr string
	}{
		{"add", "", []string{"add", "Weather", "--password", "pw"}, "weather@localhost\n", ""},
		{"add from stdin", "pw\n", []string{"add", "news"}, "news@localhost\n", ""},
		{"add with plus", "", []string{"add", "+bot", "--password", "pw"}, "", "reserved"},
		{"add invalid localpart", "", []string{"add", "a@b", "--password", "pw"}, "",
			"not a valid XMPP localpart"},
		{"list", "", []string{"list"}, "news@localhost\nweather@localhost\n", ""},
		{"del", "", []string{"del", "news"}, "deleted news@localhost\n", ""},
		{"list after del", "", []string{"list"}, "weather@localhost\n", ""},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			out, err := run(t, env, s.stdin, runBot, s.args...)
			if s.wantErr == "" && err != nil || s.wantErr != "" &&
				(err == nil || !strings.Contains(err.Error(), s.wantErr)) {
				t.Fatalf("error %v, want one containing %q", err, s.wantErr)
			}
			if out != s.wantOut {
				t.Errorf("stdout %q, want %q", out, s.wantOut)
			}
		})
	}
	// user and bot commands do not act on each other's accounts.
	if _, err := run(t, env, "", runUser, "del", "weather"); err == nil {
		t.Error("user del removed a bot")
	}
	if out, _ := run(t, env, "", runUser, "list"); out != "+12025550101@localhost\n" {
		t.Errorf("user list shows %q", out)
	}
}

func TestUserImport(t *testing.T) {
	env, _, errOut := testEnv(t)
	if _, err := run(t, env, "", runUser, "add", "+12025550100", "--password", "pw"); err != nil {
		t.Fatal(err)
	}
	csv := "number,password\n" +
		"+1 202 555 0101,pw\n" +
		"2025550102,pw\n" +
		"not a number,pw\n" +
		"+12025550101,other\n" +
		"+12025550100,pw\n" +
		"only-one-field\n" +
		"\"+1 (202) 555-0103\",\"p,w\"\n"
	path := filepath.Join(t.TempDir(), "users.csv")
	if err := os.WriteFile(path, []byte(csv), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := run(t, env, "", runUser, "import", path, "--workers", "2", "--same-salt")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "imported 3 accounts") ||
		!strings.Contains(out, "skipped 2 duplicates, 2 invalid rows") {
		t.Errorf("summary %q", out)
	}
	for _, want := range []string{`:4: "not a number" is not a valid phone number`,
		":5: +12025550101: duplicate", ":6: +12025550100: duplicate",
		":7: expected number,password", "importing: 100% 5/5"} {
		if !strings.Contains(errOut.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut.String())
		}
	}
	list, _ := run(t, env, "", runUser, "list")
	want := "+12025550100@localhost\n+12025550101@localhost\n+12025550102@localhost\n" +
		"+12025550103@localhost\n"
	if list != want {
		t.Errorf("list %q, want %q", list, want)
	}
}

// TestUserImportMillion times "twotick user import --same-salt" of a million
// rows with one password. It runs only when TWOTICK_IMPORT_MILLION is set.
func TestUserImportMillion(t *testing.T) {
	if os.Getenv("TWOTICK_IMPORT_MILLION") == "" {
		t.Skip("set TWOTICK_IMPORT_MILLION=1 to import a million rows")
	}
	env, _, errOut := testEnv(t)
	var b strings.Builder
	for i := range 1_000_000 {
		fmt.Fprintf(&b, "+1 202 %03d %04d,pw\n", 200+i/10000, i%10000)
	}
	path := filepath.Join(t.TempDir(), "million.csv")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	out, err := run(t, env, "", runUser, "import", path, "--same-salt")
	if err != nil {
		t.Fatalf("%v\n%s", err, errOut)
	}
	t.Logf("%s(wall %v)", out, time.Since(start))
	if !strings.Contains(out, "imported 1000000 accounts") {
		t.Errorf("summary %q; stderr:\n%.2000s", out, errOut)
	}
}

// TestDelForgetsBlocklist: a deleted account's blocklist goes with it, so
// that whoever gets the number next does not inherit it.
func TestDelForgetsBlocklist(t *testing.T) {
	ctx := context.Background()
	env, _, _ := testEnv(t)
	if _, err := run(t, env, "", runUser, "add", "+12025550101", "--password", "pw"); err != nil {
		t.Fatal(err)
	}
	bl, err := roster.OpenBlocklist(ctx, env.DB, 0)
	if err != nil {
		t.Fatal(err)
	}
	owner := "+12025550101@localhost"
	if _, err := bl.Block(ctx, owner, []string{"+12025550102@localhost"}); err != nil {
		t.Fatal(err)
	}
	if _, err := run(t, env, "", runUser, "del", "+12025550101"); err != nil {
		t.Fatal(err)
	}
	if list, err := bl.List(ctx, owner); err != nil || len(list) != 0 {
		t.Fatalf("blocklist after user del = %v, %v; want empty", list, err)
	}
}

// TestUserCommandClosesDatabase checks that a command that changes phone
// accounts (and so the address-book rosters) leaves the database closed:
// SQLite removes the write-ahead log only when its last connection closes,
// and a connection left open would leave the log for the next start.
func TestUserCommandClosesDatabase(t *testing.T) {
	env, _, _ := testEnv(t)
	if _, err := run(t, env, "", runUser, "add", "+12025550101", "--password", "pw"); err != nil {
		t.Fatal(err)
	}
	var seq int
	var name, file string
	if err := env.DB.QueryRow(`PRAGMA database_list`).Scan(&seq, &name, &file); err != nil {
		t.Fatal(err)
	}
	if err := env.DB.Close(); err != nil {
		t.Fatal(err)
	}
	path := file + "-wal"
	if _, err := os.Stat(path); err == nil {
		t.Errorf("%s is left after user add: a database connection was not closed", path)
	}
}
