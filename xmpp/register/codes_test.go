package register

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/twotick/twotick/xmpp/storage"
)

// fakeClock is a settable clock for Codes.Now.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fakeClock {
	return &fakeClock{t: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func openDB(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := storage.Open(context.Background(), path, "normal")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func openCodes(t *testing.T, db *sql.DB, opts Options, clock *fakeClock) *Codes {
	t.Helper()
	c, err := OpenCodes(context.Background(), db, opts)
	if err != nil {
		t.Fatal(err)
	}
	c.Now = clock.Now
	return c
}

var (
	addrA = netip.MustParseAddr("192.0.2.1")
	addrB = netip.MustParseAddr("192.0.2.2")
)

func mustRequest(t *testing.T, c *Codes, number string, addr netip.Addr) string {
	t.Helper()
	res, err := c.Request(context.Background(), number, addr, "en")
	if err != nil {
		t.Fatalf("Request(%s): %v", number, err)
	}
	if len(res.Code) != 6 || res.Number != number {
		t.Fatalf("Request(%s) = %+v", number, res)
	}
	return res.Code
}

// wrong returns a code different from code.
func wrong(code string) string {
	if code == "000000" {
		return "000001"
	}
	return "000000"
}

func TestVerify(t *testing.T) {
	const n = "+12025550101"
	ctx := context.Background()
	tests := []struct {
		name string
		run  func(t *testing.T, c *Codes, clock *fakeClock)
	}{
		{"right code once", func(t *testing.T, c *Codes, clock *fakeClock) {
			code := mustRequest(t, c, n, addrA)
			if err := c.Verify(ctx, n, code); err != nil {
				t.Fatalf("first Verify: %v", err)
			}
			if err := c.Verify(ctx, n, code); !errors.Is(err, ErrExpired) {
				t.Fatalf("second Verify = %v, want ErrExpired (single use)", err)
			}
		}},
		{"no code", func(t *testing.T, c *Codes, clock *fakeClock) {
			if err := c.Verify(ctx, n, "123456"); !errors.Is(err, ErrExpired) {
				t.Fatalf("Verify = %v, want ErrExpired", err)
			}
		}},
		{"valid until ten minutes", func(t *testing.T, c *Codes, clock *fakeClock) {
			code := mustRequest(t, c, n, addrA)
			clock.Advance(10*time.Minute - time.Millisecond)
			if err := c.Verify(ctx, n, code); err != nil {
				t.Fatalf("Verify just before expiry: %v", err)
			}
		}},
		{"expired after ten minutes", func(t *testing.T, c *Codes, clock *fakeClock) {
			code := mustRequest(t, c, n, addrA)
			clock.Advance(10 * time.Minute)
			if err := c.Verify(ctx, n, code); !errors.Is(err, ErrExpired) {
				t.Fatalf("Verify = %v, want ErrExpired", err)
			}
		}},
		{"five wrong attempts", func(t *testing.T, c *Codes, clock *fakeClock) {
			code := mustRequest(t, c, n, addrA)
			for i := 1; i <= 4; i++ {
				if err := c.Verify(ctx, n, wrong(code)); !errors.Is(err, ErrWrongCode) {
					t.Fatalf("wrong attempt %d = %v, want ErrWrongCode", i, err)
				}
			}
			if err := c.Verify(ctx, n, wrong(code)); !errors.Is(err, ErrTooManyAttempts) {
				t.Fatalf("fifth wrong attempt = %v, want ErrTooManyAttempts", err)
			}
			if err := c.Verify(ctx, n, code); !errors.Is(err, ErrTooManyAttempts) {
				t.Fatalf("right code after invalidation = %v, want ErrTooManyAttempts", err)
			}
		}},
		{"four wrong then right", func(t *testing.T, c *Codes, clock *fakeClock) {
			code := mustRequest(t, c, n, addrA)
			for range 4 {
				c.Verify(ctx, n, wrong(code))
			}
			if err := c.Verify(ctx, n, " "+code+" "); err != nil {
				t.Fatalf("right code after 4 wrong: %v", err)
			}
		}},
		{"new request replaces old code", func(t *testing.T, c *Codes, clock *fakeClock) {
			old := mustRequest(t, c, n, addrA)
			c.Verify(ctx, n, wrong(old)) // the attempt count is reset too
			clock.Advance(2 * time.Minute)
			code := mustRequest(t, c, n, addrA)
			if old != code {
				if err := c.Verify(ctx, n, old); !errors.Is(err, ErrWrongCode) {
					t.Fatalf("old code = %v, want ErrWrongCode", err)
				}
			}
			if err := c.Verify(ctx, n, code); err != nil {
				t.Fatalf("new code: %v", err)
			}
		}},
		{"codes are per number", func(t *testing.T, c *Codes, clock *fakeClock) {
			code := mustRequest(t, c, n, addrA)
			if err := c.Verify(ctx, "+12025550102", code); !errors.Is(err, ErrExpired) {
				t.Fatalf("other number = %v, want ErrExpired", err)
			}
		}},
		{"discard", func(t *testing.T, c *Codes, clock *fakeClock) {
			code := mustRequest(t, c, n, addrA)
			if err := c.Discard(ctx, n); err != nil {
				t.Fatal(err)
			}
			if err := c.Verify(ctx, n, code); !errors.Is(err, ErrExpired) {
				t.Fatalf("discarded code = %v, want ErrExpired", err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newClock()
			db := openDB(t, filepath.Join(t.TempDir(), "db"))
			tt.run(t, openCodes(t, db, Options{}, clock), clock)
		})
	}
}

func TestCodesAreUniform(t *testing.T) {
	// A coarse check that all digits occur in every position: a biased or
	// constant generator fails it, a uniform one essentially never does.
	var seen [6][10]bool
	for range 2000 {
		code, err := randomCode()
		if err != nil {
			t.Fatal(err)
		}
		if len(code) != 6 {
			t.Fatalf("code %q is not 6 digits", code)
		}
		for i, r := range code {
			seen[i][r-'0'] = true
		}
	}
	for i := range seen {
		for d, ok := range seen[i] {
			if !ok {
				t.Errorf("digit %d never appeared at position %d", d, i)
			}
		}
	}
}

func TestCodesHashedAtRest(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "db")
	db := openDB(t, path)
	c := openCodes(t, db, Options{}, newClock())
	var codes []string
	for i := range 3 {
		codes = append(codes, mustRequest(t, c, fmt.Sprintf("+1202555010%d", i), addrA))
	}
	if _, err := db.Exec(`PRAGMA wal_checkpoint(FULL)`); err != nil {
		t.Fatal(err)
	}
	db.Close()

	files, _ := filepath.Glob(filepath.Join(dir, "db*"))
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, code := range codes {
			if bytes.Contains(data, []byte(code)) {
				t.Errorf("code %s found in %s", code, filepath.Base(f))
			}
		}
	}
}

func TestDefaultOptions(t *testing.T) {
	got := (Options{}).withDefaults()
	want := Options{
		CodeTTL:      10 * time.Minute,
		MaxAttempts:  5,
		NumberShort:  Limit{1, 2 * time.Minute},
		NumberLong:   Limit{2, 8 * time.Hour},
		AddressShort: Limit{5, 5 * time.Minute},
		AddressLong:  Limit{100, 24 * time.Hour},
		Global:       Limit{1000, time.Hour},
		IPv6Prefix:   64,
	}
	if got != want {
		t.Fatalf("defaults = %+v, want %+v", got, want)
	}
	off := (Options{Global: Limit{Max: -1}}).withDefaults()
	if off.Global.enabled() {
		t.Fatalf("negative Max did not switch the limit off: %+v", off.Global)
	}
}

// limited asserts that err is a LimitError of scope with RetryAfter want.
func limited(t *testing.T, err error, scope string, want time.Duration) {
	t.Helper()
	var lim *LimitError
	if !errors.As(err, &lim) {
		t.Fatalf("err = %v, want a %s LimitError", err, scope)
	}
	if lim.Scope != scope || lim.RetryAfter != want {
		t.Fatalf("LimitError = %+v, want scope %s, retry after %s", lim, scope, want)
	}
}

func TestLimits(t *testing.T) {
	ctx := context.Background()
	num := func(i int) string { return fmt.Sprintf("+1202555%04d", i) }
	tests := []struct {
		name string
		opts Options
		run  func(t *testing.T, c *Codes, clock *fakeClock)
	}{
		{"number 1 per 2 minutes", Options{}, func(t *testing.T, c *Codes, clock *fakeClock) {
			mustRequest(t, c, num(1), addrA)
			clock.Advance(30 * time.Second)
			_, err := c.Request(ctx, num(1), addrB, "")
			limited(t, err, ScopeNumber, 90*time.Second)
			clock.Advance(90 * time.Second)
			mustRequest(t, c, num(1), addrB)
		}},
		{"number 2 per 8 hours", Options{}, func(t *testing.T, c *Codes, clock *fakeClock) {
			mustRequest(t, c, num(1), addrA)
			clock.Advance(2 * time.Minute)
			mustRequest(t, c, num(1), addrA)
			clock.Advance(2 * time.Minute)
			_, err := c.Request(ctx, num(1), addrB, "")
			limited(t, err, ScopeNumber, 8*time.Hour-4*time.Minute)
			d, err := c.NumberRetryAfter(ctx, num(1))
			if err != nil || d != 8*time.Hour-4*time.Minute {
				t.Fatalf("NumberRetryAfter = %s, %v", d, err)
			}
			clock.Advance(8*time.Hour - 4*time.Minute)
			mustRequest(t, c, num(1), addrB)
		}},
		{"address 5 per 5 minutes", Options{}, func(t *testing.T, c *Codes, clock *fakeClock) {
			for i := range 5 {
				mustRequest(t, c, num(i), addrA)
				clock.Advance(10 * time.Second)
			}
			_, err := c.Request(ctx, num(9), addrA, "")
			limited(t, err, ScopeAddress, 5*time.Minute-50*time.Second)
			mustRequest(t, c, num(9), addrB) // another address is not affected
			clock.Advance(5*time.Minute - 50*time.Second)
			mustRequest(t, c, num(10), addrA)
		}},
		{"address 100 per day", Options{}, func(t *testing.T, c *Codes, clock *fakeClock) {
			for i := range 100 {
				mustRequest(t, c, num(i), addrA)
				if i%5 == 4 {
					clock.Advance(5 * time.Minute)
				}
			}
			_, err := c.Request(ctx, num(100), addrA, "")
			limited(t, err, ScopeAddress, 24*time.Hour-100*time.Minute)
			clock.Advance(24*time.Hour - 100*time.Minute)
			mustRequest(t, c, num(100), addrA)
		}},
		{"IPv6 counted per /64", Options{}, func(t *testing.T, c *Codes, clock *fakeClock) {
			for i := range 5 {
				a := netip.MustParseAddr(fmt.Sprintf("2001:db8:1:2::%x", i+1))
				mustRequest(t, c, num(i), a)
			}
			_, err := c.Request(ctx, num(9), netip.MustParseAddr("2001:db8:1:2:ffff::1"), "")
			limited(t, err, ScopeAddress, 5*time.Minute)
			mustRequest(t, c, num(9), netip.MustParseAddr("2001:db8:1:3::1"))
		}},
		{"global cap per hour", Options{Global: Limit{3, time.Hour}},
			func(t *testing.T, c *Codes, clock *fakeClock) {
				for i := range 3 {
					a := netip.AddrFrom4([4]byte{198, 51, 100, byte(i)})
					mustRequest(t, c, num(i), a)
					clock.Advance(time.Minute)
				}
				_, err := c.Request(ctx, num(9), addrB, "")
				limited(t, err, ScopeGlobal, 57*time.Minute)
			}},
		{"global 1000 per hour by default", Options{},
			func(t *testing.T, c *Codes, clock *fakeClock) {
				// Five codes per address stay within the address limits, so
				// only the global cap can refuse the 1001st.
				for i := range 1000 {
					a := netip.AddrFrom4([4]byte{10, byte(i / 5 >> 8), byte(i / 5), 1})
					mustRequest(t, c, num(i), a)
					if i == 499 {
						clock.Advance(30 * time.Minute)
					}
				}
				_, err := c.Request(ctx, num(1000), addrB, "")
				limited(t, err, ScopeGlobal, 30*time.Minute)
				clock.Advance(30 * time.Minute)
				// The first 500 have left the window; the next 500 have not.
				for i := range 500 {
					a := netip.AddrFrom4([4]byte{172, 16, byte(i / 5 >> 8), byte(i / 5)})
					mustRequest(t, c, num(1001+i), a)
				}
				_, err = c.Request(ctx, num(2000), addrB, "")
				limited(t, err, ScopeGlobal, 30*time.Minute)
			}},
		{"refused request is not counted", Options{}, func(t *testing.T, c *Codes, clock *fakeClock) {
			mustRequest(t, c, num(1), addrA)
			for range 10 {
				c.Request(ctx, num(1), addrA, "")
			}
			clock.Advance(2 * time.Minute)
			mustRequest(t, c, num(1), addrA)
		}},
		{"longest wait wins", Options{}, func(t *testing.T, c *Codes, clock *fakeClock) {
			for i := range 5 {
				mustRequest(t, c, num(i), addrA)
			}
			clock.Advance(time.Minute)
			// Refused by the number limit (1m left) and the address limit
			// (4m left): the client must wait for both.
			_, err := c.Request(ctx, num(0), addrA, "")
			limited(t, err, ScopeAddress, 4*time.Minute)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newClock()
			db := openDB(t, filepath.Join(t.TempDir(), "db"))
			tt.run(t, openCodes(t, db, tt.opts, clock), clock)
		})
	}
}

func TestLimitsSurviveRestart(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "db")
	clock := newClock()

	db := openDB(t, path)
	c := openCodes(t, db, Options{}, clock)
	code := mustRequest(t, c, "+12025550101", addrA)
	for i := range 4 {
		mustRequest(t, c, fmt.Sprintf("+1202555020%d", i), addrA)
	}
	db.Close()

	clock.Advance(time.Minute)
	db = openDB(t, path)
	c = openCodes(t, db, Options{}, clock)
	_, err := c.Request(ctx, "+12025550101", addrB, "")
	limited(t, err, ScopeNumber, time.Minute)
	_, err = c.Request(ctx, "+12025550301", addrA, "")
	limited(t, err, ScopeAddress, 4*time.Minute)
	if err := c.Verify(ctx, "+12025550101", code); err != nil {
		t.Fatalf("code issued before the restart: %v", err)
	}
}

// The global cap, the one that bounds the SMS bill, survives a restart too,
// and so does a code invalidated by wrong guesses.
func TestGlobalLimitSurvivesRestart(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "db")
	clock := newClock()
	opts := Options{Global: Limit{2, time.Hour}}

	db := openDB(t, path)
	c := openCodes(t, db, opts, clock)
	code := mustRequest(t, c, "+12025550401", addrA)
	mustRequest(t, c, "+12025550402", addrB)
	for range 5 {
		c.Verify(ctx, "+12025550402", "999999x")
	}
	db.Close()

	clock.Advance(5 * time.Minute)
	db = openDB(t, path)
	c = openCodes(t, db, opts, clock)
	_, err := c.Request(ctx, "+12025550403", netip.MustParseAddr("198.51.100.9"), "")
	limited(t, err, ScopeGlobal, 55*time.Minute)
	if err := c.Verify(ctx, "+12025550402", "000000"); !errors.Is(err, ErrTooManyAttempts) {
		t.Fatalf("invalidated code after the restart: %v, want ErrTooManyAttempts", err)
	}
	if err := c.Verify(ctx, "+12025550401", code); err != nil {
		t.Fatalf("code issued before the restart: %v", err)
	}
}

func TestAddressKey(t *testing.T) {
	tests := []struct{ in, want string }{
		{"192.0.2.7", "192.0.2.7"},
		{"::ffff:192.0.2.7", "192.0.2.7"},
		{"2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"},
		{"fe80::1%eth0", "fe80::/64"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := AddressKey(netip.MustParseAddr(tt.in), 64); got != tt.want {
				t.Fatalf("AddressKey = %q, want %q", got, tt.want)
			}
		})
	}
	if got := AddressKey(netip.Addr{}, 64); got != "unknown" {
		t.Fatalf("AddressKey(invalid) = %q", got)
	}
}

// BenchmarkRequestVerify measures one code's storage cost: a request (limit
// checks, records, the code) and its verification, each one transaction.
func BenchmarkRequestVerify(b *testing.B) {
	db, err := storage.Open(context.Background(), filepath.Join(b.TempDir(), "db"), "normal")
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	off := Limit{Max: -1}
	c, err := OpenCodes(context.Background(), db, Options{NumberShort: off, NumberLong: off,
		AddressShort: off, AddressLong: off, Global: Limit{Max: 1 << 30, Window: time.Hour}})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	for i := 0; b.Loop(); i++ {
		n := fmt.Sprintf("+1202555%04d", i%10000)
		res, err := c.Request(ctx, n, addrA, "")
		if err != nil {
			b.Fatal(err)
		}
		if err := c.Verify(ctx, n, res.Code); err != nil {
			b.Fatal(err)
		}
	}
}
