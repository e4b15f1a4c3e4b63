package main

import (
	"io"
	"log/slog"
	"net/http"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/twotick/twotick/conf"
)

// TestMetricsPprof: /debug/pprof/ is served only when metrics.pprof is on;
// /metrics is served either way.
func TestMetricsPprof(t *testing.T) {
	for _, on := range []bool{false, true} {
		addr := freeAddrs(t, 1)[0]
		stop, err := serveMetrics(conf.Metrics{Addr: addr, Pprof: on}, prometheus.NewRegistry(),
			nil, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		get := func(path string) int {
			resp, err := http.Get("http://" + addr + path)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			return resp.StatusCode
		}
		want := http.StatusNotFound
		if on {
			want = http.StatusOK
		}
		if got := get("/debug/pprof/"); got != want {
			t.Errorf("pprof %v: /debug/pprof/ answered %d, want %d", on, got, want)
		}
		if got := get("/metrics"); got != http.StatusOK {
			t.Errorf("pprof %v: /metrics answered %d", on, got)
		}
		stop()
	}
}
