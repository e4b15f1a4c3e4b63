package main

import (
	"strings"
	"testing"
)

// TestWriteTargets checks the verdict of each target line on made-up runs.
func TestWriteTargets(t *testing.T) {
	chat := func(server string, rate, p99, undelivered float64) runLine {
		return runLine{Server: server, Scenario: "chat", Params: map[string]any{"rate": rate},
			Metrics: map[string]float64{"achieved_rate": rate, "single_check_p99_ms": p99,
				"undelivered_in_drain": undelivered}}
	}
	idle := func(server string, tls bool, slope float64) runLine {
		return runLine{Server: server, Scenario: "idle",
			Params: map[string]any{"tls": tls, "sessions": []any{5000.0, 19000.0}},
			Metrics: map[string]float64{"kb_per_session_at_5000": slope + 2,
				"kb_per_session_at_19000": slope + 1, "kb_per_session_slope": slope}}
	}
	contacts := func(pop, rate, p99, wrong float64) runLine {
		return runLine{Server: "twotick", Scenario: "contacts",
			Metrics: map[string]float64{"uploads_per_s": rate, "upload_p99_ms": p99,
				"population": pop, "uploads_mismatched": wrong, "concurrency": 8}}
	}
	openContacts := func(offered, rate, p99 float64) runLine {
		r := contacts(1e6, rate, p99, 0)
		r.Params = map[string]any{"upload_rate": offered}
		return r
	}
	tests := []struct {
		name string
		runs []runLine
		want []string // substrings of the report, in order
	}{
		{"idle met and missed", []runLine{idle("twotick", true, 20), idle("prosody", true, 57),
			idle("twotick", false, 17), idle("ejabberd", false, 45)},
			[]string{"met: idle TLS memory ≤ 24 KB", "met: idle TLS memory ≤ half", "ratio 0.35",
				"**missed**: idle plaintext memory ≤ 16 KB", "worst +22%",
				"met: idle plaintext memory ≤ half"}},
		{"chat within 20 ms", []runLine{chat("twotick", 7500, 15, 0), chat("ejabberd", 2500, 18, 0),
			chat("ejabberd", 5000, 12, 3)},
			[]string{"met: chat ≥ 5000 msg/s", "7500 msg/s at p99 15.0 ms",
				"met: chat ≥ 1.5× the best competitor", "ejabberd 2500 msg/s, ratio 3.00"}},
		{"chat at the competitor's p99", []runLine{chat("twotick", 2500, 30, 0),
			chat("twotick", 5000, 300, 0), chat("prosody", 1000, 2000, 0),
			chat("ejabberd", 2500, 400, 0)},
			[]string{"**missed**: chat ≥ 5000 msg/s",
				"met: chat ≥ 1.5× the best competitor at equal p99",
				"ejabberd's p99 of 400 ms", "ratio 2.00"}},
		{"nothing run", nil, []string{"not measured: idle TLS", "not measured: chat",
			"not measured: offline", "not measured: contacts", "no twotick run"}},
		{"contacts met", []runLine{contacts(1e6, 260, 40, 0)},
			[]string{"met: contacts: 260 uploads/s", "p99 40.0 ms", "against 1000000 accounts"}},
		{"contacts too slow", []runLine{contacts(1e6, 200, 40, 0)},
			[]string{"**missed**: contacts: 200 uploads/s"}},
		{"contacts with wrong matches", []runLine{contacts(1e6, 300, 30, 2)},
			[]string{"**missed**: contacts", "2 uploads failed or matched wrongly"}},
		{"contacts open loop at the offered rate", []runLine{contacts(1e6, 300, 70, 0),
			openContacts(250, 248.9, 30)},
			[]string{"met: contacts: 250 uploads/s offered open loop", "p99 30.0 ms",
				"at saturation (8 in flight) 300 uploads/s with p99 70.0 ms"}},
		{"contacts open loop falling behind", []runLine{openContacts(250, 200, 30)},
			[]string{"**missed**: contacts: 200 uploads/s offered open loop"}},
		{"chat a hair under the offered rate", []runLine{func() runLine {
			r := chat("twotick", 5000, 14, 0)
			r.Metrics["achieved_rate"] = 4999.5
			return r
		}()},
			[]string{"met: chat ≥ 5000 msg/s", "5000 msg/s at p99 14.0 ms"}},
		{"contacts quick run", []runLine{contacts(20000, 300, 30, 0)},
			[]string{"not measured: contacts: 300 uploads/s", "against 20000 accounts"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var b strings.Builder
			writeTargets(&b, tc.runs)
			out := b.String()
			rest := out
			for _, w := range tc.want {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Fatalf("report lacks %q (in order) in:\n%s", w, out)
				}
				rest = rest[i+len(w):]
			}
		})
	}
}
