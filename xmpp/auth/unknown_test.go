package auth

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twotick/twotick/xmpp/storage"
)

// TestFakeIterationsFollowAccounts checks that an unknown account is
// offered the iteration count most stored accounts have, not the one new
// accounts would get: an operator who raised auth.scram_iterations after
// creating accounts must not make unknown names stand out.
func TestFakeIterationsFollowAccounts(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "auth.db")
	open := func(iter int) *Store {
		t.Helper()
		db, err := storage.Open(ctx, path, "off")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		s, err := OpenStore(ctx, db, "example.net")
		if err != nil {
			t.Fatal(err)
		}
		s.Iterations = iter
		return s
	}
	iterOf := func(s *Store, user string) string {
		t.Helper()
		x, err := NewServer(s, nil).Start(ctx, MechSCRAMSHA256, nil, testAddr)
		if err != nil {
			t.Fatal(err)
		}
		chal, _, err := x.Step(ctx, []byte("n,,n="+user+",r=abcdefgh"))
		if err != nil {
			t.Fatal(err)
		}
		return string(chal[strings.LastIndex(string(chal), ",i=")+3:])
	}

	tests := []struct {
		name    string
		created map[int]int // iteration count: accounts created with it
		current int         // auth.scram_iterations now
		want    string
	}{
		{"no accounts: the configured count", nil, 5000, "5000"},
		{"accounts with the configured count", map[int]int{4096: 2}, 4096, "4096"},
		{"count raised after accounts were made", map[int]int{1024: 3, 8192: 1}, 8192, "1024"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path = filepath.Join(t.TempDir(), "auth.db")
			n := 0
			for iter, count := range tt.created {
				s := open(iter)
				for range count {
					n++
					local := fmt.Sprintf("+1202555%02d%02d", i, n)
					if err := s.Create(ctx, local, KindPhone, "pw"); err != nil {
						t.Fatal(err)
					}
				}
			}
			s := open(tt.current)
			if got := iterOf(s, "+12025559999"); got != tt.want {
				t.Fatalf("unknown account offered i=%s, want %s", got, tt.want)
			}
		})
	}
}

// TestUnknownAccountTiming measures the server's first SCRAM step, where
// the credentials are looked up, for a real account and for an unknown
// one, interleaved, and reports both distributions. It asserts only that
// the answers have the same shape: wall-clock figures on a shared machine
// are evidence to read, not a pass mark. TWOTICK_TIMING_N sets the number
// of exchanges of each kind (default 300); docs/security.md quotes a run.
func TestUnknownAccountTiming(t *testing.T) {
	n := 300
	if v, err := strconv.Atoi(os.Getenv("TWOTICK_TIMING_N")); err == nil && v > 0 {
		n = v
	}
	store := newTestStore(t)
	ctx := context.Background()
	for i := range 50 {
		if err := store.Create(ctx, fmt.Sprintf("+120255501%02d", i), KindPhone, "pw"); err != nil {
			t.Fatal(err)
		}
	}
	srv := NewServer(store, nil)
	shape := regexp.MustCompile(`^r=abcdefgh[A-Za-z0-9+/]{32},s=[A-Za-z0-9+/]{22}==,i=4096$`)
	step := func(user string) time.Duration {
		x, err := srv.Start(ctx, MechSCRAMSHA256, nil, testAddr)
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		chal, _, err := x.Step(ctx, []byte("n,,n="+user+",r=abcdefgh"))
		d := time.Since(start)
		if err != nil || !shape.Match(chal) {
			t.Fatalf("server-first for %s: %q, %v", user, chal, err)
		}
		return d
	}
	var real, unknown []time.Duration
	for i := range n {
		real = append(real, step(fmt.Sprintf("+120255501%02d", i%50)))
		unknown = append(unknown, step(fmt.Sprintf("+120255502%02d", i%100)))
	}
	t.Logf("server-first step over %d exchanges each: real %s; unknown %s",
		n, summary(real), summary(unknown))
}

// summary gives the median, 90th and 99th percentiles of ds.
func summary(ds []time.Duration) string {
	slices.Sort(ds)
	q := func(p float64) time.Duration { return ds[int(p*float64(len(ds)-1))] }
	return fmt.Sprintf("p50 %v p90 %v p99 %v", q(0.5), q(0.9), q(0.99))
}
