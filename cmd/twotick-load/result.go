package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"
)

// metric is one reported figure.
type metric struct {
	name  string // snake_case, the JSON key
	value float64
	unit  string
}

// series is a named latency distribution to report and plot.
type series struct {
	name string
	h    *histogram
}

// result is what one run measured.
type result struct {
	cfg     *config
	started time.Time
	metrics []metric
	series  []series
	Error   string
}

func newResult(cfg *config) *result { return &result{cfg: cfg, started: time.Now()} }

func (r *result) add(name string, value float64, unit string) {
	r.metrics = append(r.metrics, metric{name, value, unit})
}

// addLatency records a distribution and its p50, p99, p99.9 and maximum.
func (r *result) addLatency(name string, h *histogram) {
	r.series = append(r.series, series{name, h})
	r.add(name+"_samples", float64(h.count()), "")
	for _, q := range []struct {
		suffix string
		q      float64
	}{{"p50", 0.50}, {"p99", 0.99}, {"p999", 0.999}, {"max", 1}} {
		r.add(name+"_"+q.suffix+"_ms", float64(h.quantile(q.q))/float64(time.Millisecond), "ms")
	}
}

// writeOutputs prints the table and writes the JSON line and the plot.
func writeOutputs(cfg *config, r *result, stdout io.Writer) error {
	r.writeTable(stdout)
	if cfg.jsonPath != "" {
		if err := r.appendJSON(cfg.jsonPath); err != nil {
			return err
		}
	}
	if cfg.plotPath != "" && len(r.series) > 0 {
		title := fmt.Sprintf("%s %s", r.cfg.serverName, r.cfg.scenario)
		if err := writePlot(cfg.plotPath, title, r.series); err != nil {
			return fmt.Errorf("writing plot: %w", err)
		}
	}
	return nil
}

func (r *result) writeTable(w io.Writer) {
	fmt.Fprintf(w, "twotick-load  server=%s  scenario=%s  addr=%s  tls=%v\n",
		r.cfg.serverName, r.cfg.scenario, r.cfg.addr, r.cfg.tls)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	for _, m := range r.metrics {
		fmt.Fprintf(tw, "%s\t%s\t%s\t\n", m.name, formatValue(m.value), m.unit)
	}
	tw.Flush()
	if r.Error != "" {
		fmt.Fprintf(w, "error: %s\n", r.Error)
	}
}

func formatValue(v float64) string {
	if v == float64(int64(v)) {
		return fmt.Sprintf("%d", int64(v))
	}
	return fmt.Sprintf("%.3f", v)
}

// appendJSON appends one line: {"time":…, "server":…, "scenario":…,
// "params":{…}, "metrics":{…}, "error":…}.
func (r *result) appendJSON(path string) error {
	ms := make(map[string]float64, len(r.metrics))
	for _, m := range r.metrics {
		ms[m.name] = m.value
	}
	c := r.cfg
	line := map[string]any{
		"time": r.started.UTC().Format(time.RFC3339), "server": c.serverName, "scenario": c.scenario,
		"params": map[string]any{
			"addr": c.addr, "tls": c.tls, "sessions": c.sessions, "pairs": c.pairs, "rate": c.rate,
			"duration_s": c.duration.Seconds(), "users": c.users, "messages": c.messages,
			"uploads": c.uploads, "book_size": c.bookSize, "connect_rate": c.connectRate,
			"population": c.population, "match_share": c.matchShare,
			"concurrency": c.concurrency, "upload_rate": c.uploadRate,
		},
		"metrics": ms,
	}
	if r.Error != "" {
		line["error"] = r.Error
	}
	b, err := json.Marshal(line)
	if err != nil {
		return fmt.Errorf("encoding results: %w", err)
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("opening %s: %w", path, err)
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return f.Close()
}
