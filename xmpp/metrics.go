package xmpp

import (
	"runtime"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/twotick/twotick/offline"
)

// Metrics are the server's Prometheus metrics. They are safe for concurrent
// use.
type Metrics struct {
	connections  prometheus.Gauge
	sessions     prometheus.Gauge
	stanzasIn    *prometheus.CounterVec
	stanzasOut   *prometheus.CounterVec
	authFailures *prometheus.CounterVec
	refused      prometheus.Counter
	resumptions  prometheus.Counter

	// in and out are the stanza counters resolved once: label lookups cost
	// a hash per stanza, and only these kinds may ever become a label, so
	// a client sending unknown element names cannot grow the series.
	in, out kindCounters
}

// kindCounters holds one counter per stanza kind.
type kindCounters struct{ message, presence, iq, other prometheus.Counter }

func newKindCounters(v *prometheus.CounterVec) kindCounters {
	return kindCounters{
		message:  v.WithLabelValues("message"),
		presence: v.WithLabelValues("presence"),
		iq:       v.WithLabelValues("iq"),
		other:    v.WithLabelValues("other"),
	}
}

// of returns the counter of the stanza kind named kind.
func (k kindCounters) of(kind string) prometheus.Counter {
	switch kind {
	case "message":
		return k.message
	case "presence":
		return k.presence
	case "iq":
		return k.iq
	}
	return k.other
}

// NewMetrics creates the metrics and registers them with reg (nil: not
// registered, for tests).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		connections: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "twotick_connections", Help: "Open client connections."}),
		sessions: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "twotick_sessions", Help: "Bound sessions, including those waiting for resumption."}),
		stanzasIn: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "twotick_stanzas_received_total", Help: "Stanzas received from clients, by kind."},
			[]string{"kind"}),
		stanzasOut: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "twotick_stanzas_sent_total", Help: "Stanzas queued for writing to clients, by kind."},
			[]string{"kind"}),
		authFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "twotick_auth_failures_total", Help: "Failed SASL exchanges, by condition."},
			[]string{"condition"}),
		refused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "twotick_connections_refused_total",
			Help: "Connections refused by the per-address cap on unauthenticated connections."}),
		resumptions: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "twotick_sm_resumptions_total", Help: "Sessions resumed with XEP-0198."}),
	}
	m.in, m.out = newKindCounters(m.stanzasIn), newKindCounters(m.stanzasOut)
	if reg != nil {
		build := prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "twotick_build_info", Help: "Build information; the value is always 1.",
			ConstLabels: prometheus.Labels{"version": Version, "goversion": runtime.Version()}})
		build.Set(1)
		reg.MustRegister(m.connections, m.sessions, m.stanzasIn, m.stanzasOut,
			m.authFailures, m.refused, m.resumptions, build)
	}
	return m
}

// RegisterQueueMetrics registers the queue's commit counters with reg. The
// ratio of requests to commits shows how well commits are grouped, and the
// commit time per commit how long a sender waits for its single check.
func RegisterQueueMetrics(reg prometheus.Registerer, q *offline.Queue) {
	reg.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "twotick_queue_commits_total",
			Help: "Transactions the message queue committed (each one sync)."},
			func() float64 { return float64(q.Stats().Commits) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "twotick_queue_committed_requests_total",
			Help: "Enqueues and deletions those transactions held."},
			func() float64 { return float64(q.Stats().Requests) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "twotick_queue_commit_seconds_total",
			Help: "Time spent committing, sync included."},
			func() float64 { return q.Stats().CommitTime.Seconds() }),
	)
}
