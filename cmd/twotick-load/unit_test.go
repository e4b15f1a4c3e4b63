package main

import (
	"encoding/xml"
	"errors"
	"math"
	"sync/atomic"
	"testing"
	"time"
)

func TestHistogramQuantiles(t *testing.T) {
	h := &histogram{}
	for i := 1; i <= 100000; i++ {
		h.record(time.Duration(i) * time.Microsecond) // 1 µs .. 100 ms, uniform
	}
	for _, tc := range []struct {
		q    float64
		want time.Duration
	}{
		{0.5, 50 * time.Millisecond},
		{0.99, 99 * time.Millisecond},
		{0.999, 99900 * time.Microsecond},
		{1, 100 * time.Millisecond},
	} {
		t.Run(time.Duration(tc.q*1000).String(), func(t *testing.T) {
			got := h.quantile(tc.q)
			if rel := math.Abs(float64(got-tc.want)) / float64(tc.want); rel > 0.016 {
				t.Errorf("quantile(%v) = %v, want %v within 1.6%%", tc.q, got, tc.want)
			}
		})
	}
	if h.count() != 100000 {
		t.Errorf("count = %d, want 100000", h.count())
	}
}

func TestHistogramSmallAndEmpty(t *testing.T) {
	h := &histogram{}
	if got := h.quantile(0.99); got != 0 {
		t.Errorf("empty histogram quantile = %v, want 0", got)
	}
	h.record(3 * time.Microsecond)
	h.record(-time.Second) // clock oddities count as zero
	if got := h.quantile(0.99); got != 3*time.Microsecond {
		t.Errorf("quantile = %v, want 3µs exactly", got)
	}
}

func TestBucketRoundTrip(t *testing.T) {
	for _, us := range []uint64{0, 1, 127, 128, 129, 1000, 65535, 1 << 30} {
		v := bucketValue(bucketOf(us))
		if math.Abs(float64(v)-float64(us)) > float64(us)/64+1 {
			t.Errorf("bucketValue(bucketOf(%d)) = %d, too far", us, v)
		}
	}
}

func TestScheduleOpenLoop(t *testing.T) {
	start := time.Unix(1000, 0)
	s := schedule{start: start, rate: 1000, total: 10}
	if got := s.due(0); !got.Equal(start) {
		t.Errorf("due(0) = %v, want start", got)
	}
	if got := s.due(7).Sub(start); got != 7*time.Millisecond {
		t.Errorf("due(7) = start+%v, want start+7ms", got)
	}
	var all []int
	for i := 0; i < 3; i++ {
		ks := s.forSender(i, 3)
		for j := 1; j < len(ks); j++ {
			if ks[j]-ks[j-1] != 3 {
				t.Errorf("sender %d gets %v, want every third message", i, ks)
			}
		}
		all = append(all, ks...)
	}
	if len(all) != 10 {
		t.Errorf("senders share %d messages, want all 10", len(all))
	}
}

// RFC 7677 § 3 and RFC 5802 § 5 test vectors.
func TestSCRAMClientVectors(t *testing.T) {
	for _, tc := range []struct {
		name                   string
		mech                   scramMech
		nonce, first, final, v string
	}{
		{"SCRAM-SHA-256 RFC 7677", scramSHA256, "rOprNGfwEbeRWgbNEkqO",
			"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
			"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0," +
				"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
			"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="},
		{"SCRAM-SHA-1 RFC 5802", scramSHA1, "fyko+d2lbbFgONRv9qkxdawL",
			"r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096",
			"c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
			"v=rmF9pqV8S7suAoZWja4dJRkFsKQ="},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cache := newSCRAMCache()
			for round := 0; round < 2; round++ { // the second round uses the cache
				c := newSCRAMClient(tc.mech, cache, "user", "pencil")
				c.nonce = tc.nonce
				if got := c.first(); got != "n,,n=user,r="+tc.nonce {
					t.Fatalf("first = %q", got)
				}
				final, err := c.final(tc.first)
				if err != nil || final != tc.final {
					t.Fatalf("final = %q, %v; want %q", final, err, tc.final)
				}
				if err := c.verify(tc.v); err != nil {
					t.Fatalf("verify: %v", err)
				}
				if err := c.verify("v=AAAA"); err == nil {
					t.Fatal("verify accepted a wrong server signature")
				}
			}
			if len(cache.m) != 1 {
				t.Errorf("cache holds %d entries, want 1", len(cache.m))
			}
		})
	}
}

func TestSCRAMRejectsForeignNonce(t *testing.T) {
	c := newSCRAMClient(scramSHA1, newSCRAMCache(), "user", "pencil")
	c.first()
	if _, err := c.final("r=someoneelse,s=QSXCR+Q6sek8bf92,i=4096"); err == nil {
		t.Fatal("final accepted a nonce that does not extend the client's")
	}
}

func TestCheckLoopback(t *testing.T) {
	for _, tc := range []struct {
		addr string
		ok   bool
	}{
		{"127.0.0.1:5222", true},
		{"127.8.9.10:5222", true},
		{"[::1]:5222", true},
		{"localhost:5222", true},
		{"10.0.0.1:5222", false},
		{"192.168.1.1:5222", false},
		{"example.com:5222", false},
		{"[::ffff:8.8.8.8]:5222", false},
		{"0.0.0.0:5222", false},
		{"127.0.0.1", false},
	} {
		t.Run(tc.addr, func(t *testing.T) {
			err := checkLoopback(tc.addr)
			if (err == nil) != tc.ok {
				t.Errorf("checkLoopback(%q) = %v, want ok=%v", tc.addr, err, tc.ok)
			}
			if !tc.ok && err != nil && tc.addr != "127.0.0.1" && !errors.Is(err, errNotLoopback) {
				t.Errorf("error %v does not wrap errNotLoopback", err)
			}
		})
	}
	if _, err := parseFlags([]string{"--addr", "192.0.2.1:5222"}); !errors.Is(err, errNotLoopback) {
		t.Errorf("parseFlags accepted a remote target: %v", err)
	}
}

func TestProsodyEncode(t *testing.T) {
	if got := prosodyEncode("+12025550101"); got != "%2b12025550101" {
		t.Errorf("prosodyEncode = %q", got)
	}
}

func TestRenderPlot(t *testing.T) {
	h := &histogram{}
	for i := 1; i <= 1000; i++ {
		h.record(time.Duration(i) * 10 * time.Microsecond)
	}
	img := renderPlot("test plot", []series{{"single_check", h}})
	if b := img.Bounds(); b.Dx() != plotW || b.Dy() != plotH {
		t.Fatalf("plot is %v", b)
	}
	// The curve's colour must appear somewhere inside the axes.
	found := false
	for y := marginT; y < plotH-marginB && !found; y++ {
		for x := marginL + 5; x < plotW-marginR; x++ {
			if img.RGBAAt(x, y) == seriesColors[0] {
				found = true
				break
			}
		}
	}
	if !found {
		t.Error("no curve drawn")
	}
}

// TestChatIgnoresEarlierRuns checks that a message or a receipt that a
// server kept from an earlier run, with an id of this run, is not counted:
// its latency would be measured from a due time it never had.
func TestChatIgnoresEarlierRuns(t *testing.T) {
	cr := &chatRun{sentAt: make([]atomic.Int64, 2), ackAt: make([]atomic.Int64, 2),
		recvN: make([]atomic.Int32, 2), receipt: make([]atomic.Int64, 2)}
	cr.sched = schedule{start: time.Now(), rate: 1000, total: 2}
	cr.sentAt[1].Store(cr.since())
	receipt := func(id string) *elem {
		return &elem{name: "message", attrs: []xml.Attr{{Name: xml.Name{Local: "from"},
			Value: "b@x"}}, children: []*elem{{name: "received", attrs: []xml.Attr{{
			Name: xml.Name{Local: "id"}, Value: id}}}}}
	}
	body := func(id string) *elem {
		return &elem{name: "message", attrs: []xml.Attr{{Name: xml.Name{Local: "id"},
			Value: id}}, children: []*elem{{name: "body"}}}
	}
	snd := cr.senderHandlers(&sender{})
	rcp := cr.recipientHandlers()
	for _, id := range []string{"0", "1"} {
		snd.stanza(nil, receipt(id))
		rcp.stanza(nil, body(id))
	}
	if cr.double.count() != 1 || cr.delivery.count() != 1 {
		t.Fatalf("counted %d receipts and %d deliveries, want 1 each (message 1 only)",
			cr.double.count(), cr.delivery.count())
	}
	if cr.recvN[0].Load() != 0 || cr.receipt[0].Load() != 0 {
		t.Error("message 0, never sent in this run, was counted")
	}
	if max := cr.double.quantile(1); max > time.Minute {
		t.Errorf("receipt latency %v", max)
	}
}

// TestRunNames checks the labels and plot names of the report against the
// names compare.sh gives the plots (--plot docs/perf/SCENARIO-FILE.png).
func TestRunNames(t *testing.T) {
	for _, tc := range []struct {
		scenario    string
		params      map[string]any
		label, file string
	}{
		{"chat", map[string]any{"rate": 5000.0}, "twotick @5000/s", "twotick-5000"},
		{"contacts", map[string]any{"upload_rate": 250.0, "concurrency": 64.0},
			"twotick @250/s", "twotick-250"},
		{"contacts", map[string]any{"upload_rate": 0.0, "concurrency": 8.0},
			"twotick, 8 in flight", "twotick-saturation"},
		{"offline", nil, "twotick", "twotick"},
	} {
		l, f := runNames(tc.scenario, runLine{Server: "twotick", Params: tc.params})
		if l != tc.label || f != tc.file {
			t.Errorf("%s %v: %q, %q; want %q, %q", tc.scenario, tc.params, l, f, tc.label, tc.file)
		}
	}
}
