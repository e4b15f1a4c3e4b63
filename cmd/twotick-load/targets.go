package main

import (
	"fmt"
	"math"
	"strings"
)

// Targets of issue 8 on the 2-core benchmark machine. The issue writes KB;
// the report reads it as 1,000 bytes, the stricter reading, while the
// generator measures KiB.
const (
	idleTLSTargetKB       = 24.0
	idlePlainTargetKB     = 16.0
	idleCompetitorShare   = 0.5 // of the best competitor's memory per session
	chatRateTarget        = 5000.0
	chatP99TargetMS       = 20.0
	chatCompetitorFactor  = 1.5
	offlineMessagesTarget = 100000
	offlineTimeTargetS    = 5.0
	contactsRateTarget    = 250.0
	contactsP99TargetMS   = 50.0
	kibPerKB              = 1000.0 / 1024
)

// writeTargets writes one line per target of issue 8 saying whether this
// run met it and by how much, judged only from twotick's figures and, for
// the relative targets, the best of the other servers in the same run.
func writeTargets(b *strings.Builder, runs []runLine) {
	var lines []string
	add := func(met bool, format string, args ...any) {
		verdict := "**missed**"
		if met {
			verdict = "met"
		}
		lines = append(lines, fmt.Sprintf("- %s: %s", verdict, fmt.Sprintf(format, args...)))
	}
	none := func(format string, args ...any) {
		lines = append(lines, "- not measured: "+fmt.Sprintf(format, args...))
	}
	idleTarget(runs, "idle", "TLS", idleTLSTargetKB, add, none)
	idleTarget(runs, "idle-plaintext", "plaintext", idlePlainTargetKB, add, none)
	chatTarget(runs, add, none)
	offlineTarget(runs, add, none)
	contactsTarget(runs, add, none)
	b.WriteString("## Targets (issue 8)\n\n")
	b.WriteString(strings.Join(lines, "\n"))
	b.WriteString("\n\n")
}

type verdictFunc func(met bool, format string, args ...any)
type noneFunc func(format string, args ...any)

// find returns the last run of server in the report section.
func find(runs []runLine, server, section string) (runLine, bool) {
	var out runLine
	ok := false
	for _, r := range runs {
		if r.Server == server && r.section() == section {
			out, ok = r, true
		}
	}
	return out, ok
}

// idleTarget judges memory per idle session: the absolute limit at every
// checkpoint and on the slope, and the slope against half of the best
// competitor's slope (the slope leaves out fixed costs, which favour no one).
func idleTarget(runs []runLine, section, kind string, limitKB float64, add verdictFunc,
	none noneFunc) {
	t, ok := find(runs, "twotick", section)
	if !ok {
		none("idle %s memory (≤ %.0f KB per session): no twotick run", kind, limitKB)
		return
	}
	limit := limitKB * kibPerKB
	var parts []string
	worst := 0.0
	for _, k := range checkpointKeys(t) {
		v := t.Metrics[k]
		worst = math.Max(worst, v)
		parts = append(parts, fmt.Sprintf("%s %.1f", strings.TrimPrefix(k, "kb_per_session_"), v))
	}
	add(worst <= limit, "idle %s memory ≤ %.0f KB (%.2f KiB) per session: %s KiB (worst %+.0f%%)",
		kind, limitKB, limit, strings.Join(parts, ", "), 100*(worst/limit-1))
	slope, ok := t.Metrics["kb_per_session_slope"]
	if !ok {
		return
	}
	best, bestName := math.Inf(1), ""
	for _, r := range runs {
		if r.Server != "twotick" && r.section() == section {
			if v, ok := r.Metrics["kb_per_session_slope"]; ok && v > 0 && v < best {
				best, bestName = v, r.Server
			}
		}
	}
	if bestName == "" {
		none("idle %s memory against the competitors: no competitor run", kind)
		return
	}
	add(slope <= idleCompetitorShare*best,
		"idle %s memory ≤ half the best competitor: twotick slope %.1f KiB, %s %.1f KiB, "+
			"ratio %.2f (target ≤ %.2f)",
		kind, slope, bestName, best, slope/best, idleCompetitorShare)
}

// checkpointKeys lists kb_per_session_at_N in ascending N, then the slope.
func checkpointKeys(r runLine) []string {
	var keys []string
	if ss, ok := r.Params["sessions"].([]any); ok {
		for _, s := range ss {
			if f, ok := s.(float64); ok {
				keys = append(keys, fmt.Sprintf("kb_per_session_at_%d", int(f)))
			}
		}
	}
	if _, ok := r.Metrics["kb_per_session_slope"]; ok {
		keys = append(keys, "kb_per_session_slope")
	}
	return keys
}

// bestChatRate is the highest achieved rate of a server's chat runs whose
// p99 single check stayed within the limit and that delivered everything.
// Rates come from the grid of offered rates, so the answer is a lower bound.
func bestChatRate(runs []runLine, server string, p99Limit float64) (rate, p99 float64, ok bool) {
	for _, r := range runs {
		if r.Server != server || r.Scenario != "chat" {
			continue
		}
		m := r.Metrics
		got := sustained(param(r, "rate"), m["achieved_rate"])
		if m["single_check_p99_ms"] <= p99Limit && m["undelivered_in_drain"] == 0 && got > rate {
			rate, p99, ok = got, m["single_check_p99_ms"], true
		}
	}
	return rate, p99, ok
}

// sustained is the rate a run held: the offered rate when the achieved one
// is within 1% of it (a run's achieved rate counts the time to the last
// answer, so it always falls a little short), else the achieved rate.
func sustained(offered, achieved float64) float64 {
	if offered > 0 && achieved >= 0.99*offered {
		return offered
	}
	return achieved
}

// param returns a numeric parameter of a run, 0 when it has none.
func param(r runLine, name string) float64 {
	v, _ := r.Params[name].(float64)
	return v
}

func chatTarget(runs []runLine, add verdictFunc, none noneFunc) {
	if _, ok := find(runs, "twotick", "chat"); !ok {
		none("chat: no twotick run")
		return
	}
	rate, p99, ok := bestChatRate(runs, "twotick", chatP99TargetMS)
	if !ok {
		add(false, "chat ≥ %.0f msg/s with p99 single check ≤ %.0f ms: "+
			"no twotick rate kept p99 within %.0f ms",
			chatRateTarget, chatP99TargetMS, chatP99TargetMS)
		chatAtCompetitorP99(runs, add, none)
		return
	}
	add(rate >= chatRateTarget,
		"chat ≥ %.0f msg/s with p99 single check ≤ %.0f ms: %.0f msg/s at p99 %.1f ms (%+.0f%%)",
		chatRateTarget, chatP99TargetMS, rate, p99, 100*(rate/chatRateTarget-1))
	best, bestName := 0.0, ""
	for _, s := range []string{"prosody", "ejabberd"} {
		if r, _, ok := bestChatRate(runs, s, chatP99TargetMS); ok && r > best {
			best, bestName = r, s
		}
	}
	if bestName != "" {
		add(rate >= chatCompetitorFactor*best,
			"chat ≥ %.1f× the best competitor at equal p99 (≤ %.0f ms): "+
				"twotick %.0f msg/s, %s %.0f msg/s, "+
				"ratio %.2f (rates are the offered grid, so both are lower bounds)",
			chatCompetitorFactor, chatP99TargetMS, rate, bestName, best, rate/best)
		return
	}
	chatAtCompetitorP99(runs, add, none)
}

// chatAtCompetitorP99 compares at the competitors' own latency when none
// kept p99 within the target: the competitor's fastest run that delivered
// everything, against twotick's fastest run with a p99 no higher.
func chatAtCompetitorP99(runs []runLine, add verdictFunc, none noneFunc) {
	var best runLine
	for _, r := range runs {
		m := r.Metrics
		if r.Scenario != "chat" || r.Server == "twotick" || m["undelivered_in_drain"] != 0 {
			continue
		}
		if m["achieved_rate"] > best.Metrics["achieved_rate"] {
			best = r
		}
	}
	if best.Server == "" {
		none("chat against the competitors: no competitor run delivered every message")
		return
	}
	p99 := best.Metrics["single_check_p99_ms"]
	rate, tp99, ok := bestChatRate(runs, "twotick", p99)
	if !ok {
		add(false, "chat ≥ %.1f× the best competitor at equal p99: "+
			"no twotick run kept p99 within %s's %.0f ms",
			chatCompetitorFactor, best.Server, p99)
		return
	}
	c := best.Metrics["achieved_rate"]
	add(rate >= chatCompetitorFactor*c,
		"chat ≥ %.1f× the best competitor at equal p99: "+
			"no competitor kept p99 within %.0f ms, so at %s's "+
			"p99 of %.0f ms (its fastest run that delivered everything, %.0f msg/s): "+
			"twotick %.0f msg/s at p99 %.1f ms, "+
			"ratio %.2f (rates are the offered grid, so twotick's is a lower bound)",
		chatCompetitorFactor, chatP99TargetMS, best.Server, p99, c, rate, tp99, rate/c)
}

func offlineTarget(runs []runLine, add verdictFunc, none noneFunc) {
	t, ok := find(runs, "twotick", "offline")
	if !ok {
		none("offline: no twotick run")
		return
	}
	n := t.Metrics["users"] * t.Metrics["messages_per_user"]
	d, delivered := t.Metrics["deliver_time_s"]
	if !delivered {
		add(false, "offline %d messages delivered and purged in ≤ %.0f s: "+
			"not all delivered within the drain", int(n), offlineTimeTargetS)
		return
	}
	kept := t.Metrics["kept_after_ack"]
	scale := ""
	if n != offlineMessagesTarget {
		scale = fmt.Sprintf(" (run with %d messages, not %d)", int(n), offlineMessagesTarget)
	}
	add(d <= offlineTimeTargetS && kept == 0 && n >= offlineMessagesTarget,
		"offline %d messages delivered and purged in ≤ %.0f s: %.2f s, %d kept after ack%s",
		offlineMessagesTarget, offlineTimeTargetS, d, int(kept), scale)
}

// contactsPopulation is the number of accounts the contacts target names.
const contactsPopulation = 1000000

// contactsTarget judges twotick's contacts run: the rate and p99 of
// uploads against a population of a million accounts, with every upload
// answered and matched as its book says. Prosody and ejabberd have no
// address-book upload, so there is nothing to compare with.
func contactsTarget(runs []runLine, add verdictFunc, none noneFunc) {
	// An open-loop run (--upload-rate) is judged at its offered rate; a
	// closed-loop one (--concurrency) measures the rate at saturation,
	// whose p99 is that of a full queue, and is judged only without the
	// other.
	var open, closed *runLine
	for i, r := range runs {
		if r.Server != "twotick" || r.Scenario != "contacts" {
			continue
		}
		if param(r, "upload_rate") > 0 {
			open = &runs[i]
		} else {
			closed = &runs[i]
		}
	}
	t := open
	if t == nil {
		t = closed
	}
	if t == nil {
		none("contacts (≥ %.0f uploads/s, p99 ≤ %.0f ms against 1,000,000 accounts): "+
			"no twotick run", contactsRateTarget, contactsP99TargetMS)
		return
	}
	m := t.Metrics
	rate, p99, pop := m["uploads_per_s"], m["upload_p99_ms"], m["population"]
	how := "at saturation"
	if t == open {
		rate = sustained(param(*t, "upload_rate"), rate)
		how = "offered open loop"
	}
	if pop < contactsPopulation {
		none("contacts: %.0f uploads/s with p99 %.1f ms, but against %.0f accounts, not "+
			"1,000,000 (a quick run)", rate, p99, pop)
		return
	}
	wrong := m["uploads_failed"] + m["uploads_mismatched"]
	sat := ""
	if t == open && closed != nil {
		sat = fmt.Sprintf("; at saturation (%.0f in flight) %.0f uploads/s with p99 %.1f ms",
			closed.Metrics["concurrency"], closed.Metrics["uploads_per_s"],
			closed.Metrics["upload_p99_ms"])
	}
	add(rate >= contactsRateTarget && p99 <= contactsP99TargetMS && wrong == 0 && t.Error == "",
		"contacts: %.0f uploads/s %s (target ≥ %.0f) with p99 %.1f ms (target ≤ %.0f ms) "+
			"against %.0f accounts, %.0f uploads failed or matched wrongly%s",
		rate, how, contactsRateTarget, p99, contactsP99TargetMS, pop, wrong, sat)
}
