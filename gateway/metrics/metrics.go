package metrics

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// latencyBuckets span a local point read (~100 µs) to a request timeout
// (seconds).
func latencyBuckets() []float64 {
	return []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}
}

// sizeBuckets (1 .. 1024) cover the proposer's 256-write batches and
// Dragonboat's apply batches of a replaying log.
func sizeBuckets() []float64 { return prometheus.ExponentialBuckets(1, 2, 11) }

// Metrics is the registry and the event-time instruments. A nil *Metrics
// observes nothing (its methods are no-ops), so callers need not check.
type Metrics struct {
	reg *prometheus.Registry
	// codes are the status codes as label values, formatted once.
	codes [600]string

	httpDur *prometheus.HistogramVec

	proposeDur, proposeWrites prometheus.Histogram
	proposeFail               prometheus.Counter
	readDur                   prometheus.Histogram
	readFail                  prometheus.Counter
	applyDur, applyEntries    prometheus.Histogram
	statements                prometheus.Counter
}

// New builds the registry with the Go and process collectors, the
// instruments, and the collector of published state.
func New(cfg Config) (*Metrics, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	m := &Metrics{reg: prometheus.NewRegistry()}
	for i := range m.codes {
		m.codes[i] = strconv.Itoa(i)
	}
	m.httpDur = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "skiff_http_request_duration_seconds",
		Help:    "HTTP API requests by route (API.md 1.1 route name, not the raw path) and status code, and their latency; _count is the request count.",
		Buckets: latencyBuckets(),
	}, []string{"route", "code"})
	m.proposeDur = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "skiff_raft_proposal_duration_seconds", Buckets: latencyBuckets(),
		Help: "Write proposals (one client write, or one BATCH entry of several) from proposing to applied; _count is the proposal count.",
	})
	m.proposeWrites = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "skiff_raft_proposal_writes", Buckets: sizeBuckets(),
		Help: "Client writes per proposed Raft entry (group commit).",
	})
	m.proposeFail = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "skiff_raft_proposal_failures_total", Help: "Write proposals that ended with an error.",
	})
	m.readDur = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "skiff_raft_read_index_round_duration_seconds", Buckets: latencyBuckets(),
		Help: "ReadIndex rounds (each confirms every linearizable read waiting when it began); _count is the round count.",
	})
	m.readFail = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "skiff_raft_read_index_round_failures_total", Help: "ReadIndex rounds that ended with an error.",
	})
	m.applyDur = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "skiff_sm_apply_duration_seconds", Buckets: latencyBuckets(),
		Help: "State machine apply batches (one SQLite transaction each) and their latency.",
	})
	m.applyEntries = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "skiff_sm_apply_batch_entries", Buckets: sizeBuckets(),
		Help: "Raft entries per state machine apply batch.",
	})
	m.statements = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "skiff_sm_statements_applied_total", Help: "Client SQL statements the state machine ran.",
	})
	for _, c := range []prometheus.Collector{
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.httpDur, m.proposeDur, m.proposeWrites, m.proposeFail, m.readDur, m.readFail,
		m.applyDur, m.applyEntries, m.statements,
		newStateCollector(cfg),
	} {
		if err := m.reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// Registry is the registry the handler serves (tests gather from it).
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the registry in the Prometheus text format (or
// OpenMetrics when asked).
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// ObserveHTTP records one HTTP request. route must come from a bounded set
// (the route table's names), never the raw path.
func (m *Metrics) ObserveHTTP(route string, code int, d time.Duration) {
	if m == nil {
		return
	}
	c := "other"
	if code >= 0 && code < len(m.codes) {
		c = m.codes[code]
	}
	m.httpDur.WithLabelValues(route, c).Observe(d.Seconds())
}

// Proposed implements replica.Observer.
func (m *Metrics) Proposed(d time.Duration, writes int, err error) {
	if m == nil {
		return
	}
	m.proposeDur.Observe(d.Seconds())
	m.proposeWrites.Observe(float64(writes))
	if err != nil {
		m.proposeFail.Inc()
	}
}

// ReadRound implements replica.Observer.
func (m *Metrics) ReadRound(d time.Duration, err error) {
	if m == nil {
		return
	}
	m.readDur.Observe(d.Seconds())
	if err != nil {
		m.readFail.Inc()
	}
}

// Applied implements replica.Observer.
func (m *Metrics) Applied(d time.Duration, entries, statements int) {
	if m == nil {
		return
	}
	m.applyDur.Observe(d.Seconds())
	m.applyEntries.Observe(float64(entries))
	m.statements.Add(float64(statements))
}
