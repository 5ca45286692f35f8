package bench

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Latencies are recorded in microseconds, from 1 µs to 5 minutes, with 3
// significant digits.
const (
	histMin = 1
	histMax = int64(5 * time.Minute / time.Microsecond)
	histSig = 3
)

func newHist() *hdrhistogram.Histogram { return hdrhistogram.New(histMin, histMax, histSig) }

// Latency is a latency summary in milliseconds.
type Latency struct {
	P50  float64 `json:"p50_ms"`
	P90  float64 `json:"p90_ms"`
	P99  float64 `json:"p99_ms"`
	P999 float64 `json:"p999_ms"`
	Max  float64 `json:"max_ms"`
	Mean float64 `json:"mean_ms"`
}

func summarize(h *hdrhistogram.Histogram) Latency {
	ms := func(us int64) float64 { return float64(us) / 1000 }
	return Latency{P50: ms(h.ValueAtQuantile(50)), P90: ms(h.ValueAtQuantile(90)), P99: ms(h.ValueAtQuantile(99)),
		P999: ms(h.ValueAtQuantile(99.9)), Max: ms(h.Max()), Mean: h.Mean() / 1000}
}

// Result is what a run measured.
type Result struct {
	Workload   string  `json:"workload"`
	Targets    string  `json:"targets"`
	Workers    int     `json:"workers"`
	Rate       float64 `json:"rate,omitempty"`
	Requests   int64   `json:"requests"`
	Statements int64   `json:"statements"`
	// Errors counts failed requests by kind: "http_<status>", "transport",
	// or "sql_error" (a 200 whose JSON carries an error).
	Errors         map[string]int64 `json:"errors"`
	ElapsedS       float64          `json:"elapsed_s"`
	RequestsPerS   float64          `json:"requests_per_s"`
	StatementsPerS float64          `json:"statements_per_s"`
	Latency        Latency          `json:"latency"`
}

// worker's own counters, merged at the end (no shared hot state).
type workerStats struct {
	hist       *hdrhistogram.Histogram
	requests   int64
	statements int64
	errors     map[string]int64
}

// Run prepares the table, then drives the targets until the duration or
// the request budget is spent, or ctx ends. progress, when not nil, gets a
// live line every second.
func Run(ctx context.Context, cfg Config, progress io.Writer) (*Result, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	var sql []string
	if cfg.Workload == WorkloadSQL {
		var err error
		if sql, err = loadSQL(cfg.SQLFile); err != nil {
			return nil, err
		}
	}
	client := &http.Client{Timeout: cfg.Timeout, Transport: &http.Transport{
		MaxIdleConns: cfg.Workers * 2, MaxIdleConnsPerHost: cfg.Workers, DisableCompression: true,
		TLSClientConfig: cfg.TLS}}
	acc := access{tls: cfg.TLS, user: cfg.User, password: cfg.Password}
	bases := make([]string, len(cfg.Addrs))
	for i, a := range cfg.Addrs {
		bases[i] = strings.TrimRight(a, "/")
		if !strings.Contains(a, "://") {
			bases[i] = "http://" + bases[i]
		}
	}
	if cfg.Workload != WorkloadSQL && !cfg.NoSetup {
		base, auth, err := splitBase(bases[0], acc)
		if err != nil {
			return nil, err
		}
		for _, body := range setupStatements(cfg) {
			if err := post(ctx, client, base+"/db/execute", body, auth); err != nil {
				return nil, fmt.Errorf("prepare table: %w", err)
			}
		}
	}

	var budget atomic.Int64
	budget.Store(cfg.Requests)
	claim := func() bool { return cfg.Requests == 0 || budget.Add(-1) >= 0 }

	workerTargets, err := openTargets(ctx, cfg, bases, client, acc)
	if err != nil {
		return nil, err
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if cfg.Duration > 0 {
		ctx, cancel = context.WithTimeout(ctx, cfg.Duration)
		defer cancel()
	}
	var ticks <-chan time.Time
	start := time.Now()
	if cfg.Rate > 0 {
		ticks = schedule(ctx, start, cfg.Rate, cfg.Workers)
	}
	var done atomic.Int64
	var wg sync.WaitGroup
	stats := make([]*workerStats, cfg.Workers)
	for i := range stats {
		st := &workerStats{hist: newHist(), errors: map[string]int64{}}
		stats[i] = st
		wl := newWorkload(cfg, uint64(i)+1, sql)
		targets := workerTargets[i]
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() {
				for _, t := range targets {
					t.close()
				}
			}()
			for n := i; ; n++ {
				intended := time.Now()
				if ticks != nil {
					var ok bool
					if intended, ok = <-ticks; !ok {
						return
					}
				} else if ended(ctx) {
					return
				}
				if !claim() {
					return // the request budget is spent; the others finish theirs
				}
				req := wl.nextRequest()
				kind := targets[n%len(targets)].send(ctx, req.path, req.body)
				if kind == "transport" && ended(ctx) {
					return // cut off by the end of the run's duration: not counted
				}
				_ = st.hist.RecordValue(max(histMin, min(histMax, time.Since(intended).Microseconds())))
				st.requests++
				st.statements += int64(req.stmts)
				if kind != "" {
					st.errors[kind]++
				}
				done.Add(1)
			}
		}()
	}
	stopProgress := make(chan struct{})
	if progress != nil {
		go func() {
			t := time.NewTicker(time.Second)
			defer t.Stop()
			for {
				select {
				case <-t.C:
					el := time.Since(start).Seconds()
					fmt.Fprintf(progress, "\r%6.1fs %10d requests %10.0f req/s", el, done.Load(), float64(done.Load())/el)
				case <-stopProgress:
					fmt.Fprintln(progress)
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(stopProgress)

	res := &Result{Workload: cfg.Workload, Targets: redacted(cfg.Addrs), Workers: cfg.Workers, Rate: cfg.Rate,
		Errors: map[string]int64{}, ElapsedS: elapsed.Seconds()}
	h := newHist()
	for _, st := range stats {
		h.Merge(st.hist)
		res.Requests += st.requests
		res.Statements += st.statements
		for k, v := range st.errors {
			res.Errors[k] += v
		}
	}
	res.RequestsPerS = float64(res.Requests) / elapsed.Seconds()
	res.StatementsPerS = float64(res.Statements) / elapsed.Seconds()
	res.Latency = summarize(h)
	return res, nil
}

// redacted joins addrs with the passwords of user:pass@ URLs masked.
func redacted(addrs []string) string {
	out := make([]string, len(addrs))
	for i, a := range addrs {
		out[i] = a
		if u, err := url.Parse(a); err == nil && u.User != nil {
			out[i] = u.Redacted()
		}
	}
	return strings.Join(out, ",")
}

// openTargets gives each worker its own connection to each target, opened
// (and for https, its TLS handshake done) before the clock starts.
func openTargets(ctx context.Context, cfg Config, bases []string, client *http.Client, acc access) ([][]*target, error) {
	ts := make([][]*target, cfg.Workers)
	for i := range ts {
		for _, b := range bases {
			t, err := newTarget(b, client, cfg.Timeout, acc)
			if err != nil {
				closeAll(ts)
				return nil, err
			}
			if err := t.connect(ctx); err != nil {
				closeAll(ts)
				return nil, fmt.Errorf("connect to %s: %w", t.base, err)
			}
			ts[i] = append(ts[i], t)
		}
	}
	return ts, nil
}

func closeAll(ts [][]*target) {
	for _, w := range ts {
		for _, t := range w {
			t.close()
		}
	}
}

// schedule sends the intended send times of an open-loop run at rate per
// second from start until ctx ends. A late reader receives a time in the
// past: its latency then counts the wait, so a stalled server shows.
func schedule(ctx context.Context, start time.Time, rate float64, buffer int) <-chan time.Time {
	out := make(chan time.Time, buffer)
	interval := time.Duration(float64(time.Second) / rate)
	go func() {
		defer close(out)
		for i := int64(0); ; i++ {
			at := start.Add(time.Duration(i) * interval)
			if d := time.Until(at); d > 0 {
				select {
				case <-time.After(d):
				case <-ctx.Done():
					return
				}
			}
			select {
			case out <- at:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out
}

func post(ctx context.Context, c *http.Client, url string, body []byte, auth string) error {
	if kind, err := sendErr(ctx, c, url, body, auth); err != nil {
		return err // a *url.Error: it names the URL
	} else if kind != "" {
		return fmt.Errorf("%s: %s", url, kind)
	}
	return nil
}

// Text renders r for a terminal.
func (r *Result) Text() string {
	var b strings.Builder
	fmt.Fprintf(&b, "workload %s, %d workers", r.Workload, r.Workers)
	if r.Rate > 0 {
		fmt.Fprintf(&b, ", open loop at %.0f req/s", r.Rate)
	}
	fmt.Fprintf(&b, ", targets %s\n", r.Targets)
	fmt.Fprintf(&b, "requests    %d in %.2fs: %.0f req/s, %.0f statements/s\n", r.Requests, r.ElapsedS, r.RequestsPerS, r.StatementsPerS)
	l := r.Latency
	fmt.Fprintf(&b, "latency ms  p50 %.3f  p90 %.3f  p99 %.3f  p99.9 %.3f  max %.3f  mean %.3f\n", l.P50, l.P90, l.P99, l.P999, l.Max, l.Mean)
	if len(r.Errors) == 0 {
		b.WriteString("errors      0\n")
	} else {
		kinds := make([]string, 0, len(r.Errors))
		for k := range r.Errors {
			kinds = append(kinds, k)
		}
		sort.Strings(kinds)
		b.WriteString("errors     ")
		for _, k := range kinds {
			fmt.Fprintf(&b, " %s=%d", k, r.Errors[k])
		}
		b.WriteString("\n")
	}
	return b.String()
}
