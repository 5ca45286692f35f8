// Command benchcdc is `make bench-cdc` (issue 15, "Performance"): side by
// side in one run, on 3-node loopback clusters of a built skiffd,
//
//	(a) closed-loop inserts on the leader without CDC and with CDC to a
//	    webhook receiver in this process: inserts/s and node CPU per insert,
//	    and their ratios (target: at most 10% fewer inserts/s, at most 10%
//	    more CPU per insert);
//	(b) the delivery lag (the writer's acknowledgement of a raft_index to
//	    the receiver's arrival of that index, and the event's
//	    commit_timestamp to arrival) at half the closed-loop insert rate,
//	    open loop (target: p99 under 250 ms);
//	(c) ingest: statements applied per second from NATS JetStream (a
//	    server embedded in this process) against the same INSERTs over HTTP
//	    with the same concurrency.
//
// The cluster, CPU and median code is test/benchkit's, shared with
// test/benchcluster; cmd/skiff/bench drives the closed loop.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/skiffdb/skiff/cmd/skiff/bench"
	"github.com/skiffdb/skiff/test/benchkit"
	"github.com/skiffdb/skiff/test/webhook"
)

// options are the command line.
type options struct {
	benchkit.Flags
	lagD       time.Duration
	batchDelay string
	ingestN    int
	ingestC    int
	keep       bool
	profile    string
}

func main() {
	o := options{Flags: benchkit.DefaultFlags()}
	o.D, o.Runs = 5*time.Second, 3
	o.Register(flag.CommandLine)
	flag.DurationVar(&o.lagD, "lag-d", 10*time.Second, "Duration of the open-loop delivery lag run")
	flag.StringVar(&o.batchDelay, "cdc-batch-delay", "10ms", "max_batch_delay of the CDC config (API.md §1.14); empty: the bare URL, Skiff's defaults")
	flag.IntVar(&o.ingestN, "ingest-n", 20000, "Statements of the ingest comparison")
	flag.IntVar(&o.ingestC, "ingest-c", 63, "Concurrency of the ingest comparison: the HTTP workers, and max_in_flight x 3 nodes of the ingest consumers (rounded down to a multiple of 3)")
	flag.BoolVar(&o.keep, "keep", false, "Keep the data directories and logs (printed at the end)")
	flag.StringVar(&o.profile, "profile", "", "Directory to write CPU profiles of each cluster's leader and of a follower under closed-loop load, first run (go tool pprof -top bin/skiffd dir/cdc.prof, dir/cdc-follower.prof)")
	flag.Parse()
	if err := o.Validate(); err != nil {
		fmt.Fprintln(os.Stderr, "benchcdc:", err)
		os.Exit(2)
	}
	o.ingestC = max(1, o.ingestC/3) * 3
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "benchcdc:", err)
		os.Exit(1)
	}
}

// cluster is a started cluster under its name (the subdirectory of its
// data and logs, and of its profile).
type cluster struct {
	*benchkit.Cluster
	name string
}

// startCluster starts 3 nodes with extra flags each under dir/name.
func startCluster(skiffd, dir, name string, extra ...string) (cluster, error) {
	c, err := benchkit.StartCluster(skiffd, filepath.Join(dir, name), extra...)
	return cluster{c, name}, err
}

func run(o options) error {
	// Registered first, so that it runs after the clusters have stopped.
	dir, done, err := benchkit.WorkDir("skiff-benchcdc-", o.keep, "data and logs")
	if err != nil {
		return err
	}
	defer done()
	// A light receiver: it notes each index's arrival without decoding,
	// so that its CPU (on the same cores as the nodes) stays out of the
	// comparison; the e2e tests check the content.
	recv, err := webhook.New(webhook.Config{Light: true})
	if err != nil {
		return err
	}
	defer recv.Close()
	cdcArg := recv.URL()
	if o.batchDelay != "" {
		b, _ := json.Marshal(map[string]any{"endpoint": recv.URL(), "max_batch_delay": o.batchDelay})
		cdcArg = filepath.Join(dir, "cdc.json")
		if err := os.WriteFile(cdcArg, b, 0o600); err != nil {
			return err
		}
	}

	plain, err := startCluster(o.Skiffd, dir, "plain")
	defer plain.Stop()
	if err != nil {
		return fmt.Errorf("cluster without CDC: %w", err)
	}
	withCDC, err := startCluster(o.Skiffd, dir, "cdc", "-cdc-config", cdcArg)
	defer withCDC.Stop()
	if err != nil {
		return fmt.Errorf("cluster with CDC: %w", err)
	}
	delay := o.batchDelay
	if delay == "" {
		delay = "Skiff's default"
	}
	fmt.Printf("CDC and ingest benchmark: 3-node loopback clusters; %d workers, %s per run, median of %d run(s); CDC to an in-process webhook (light: indexes only), max_batch_delay %s\n\n",
		o.Workers, o.D, o.Runs, delay)

	// (a) closed loop, in rounds so that both see the same phases of the
	// machine.
	var plainRuns, cdcRuns []benchkit.Measured
	if o.profile != "" {
		if err := os.MkdirAll(o.profile, 0o755); err != nil {
			return err
		}
	}
	for i := 0; i < o.Runs; i++ {
		if i == 1 {
			o.profile = ""
		}
		m, err := closedLoop(plain, o, nil)
		if err != nil {
			return fmt.Errorf("inserts without CDC: %w", err)
		}
		plainRuns = append(plainRuns, m)
		m, err = closedLoop(withCDC, o, recv)
		if err != nil {
			return fmt.Errorf("inserts with CDC: %w", err)
		}
		cdcRuns = append(cdcRuns, m)
	}
	p, c := benchkit.Median(plainRuns), benchkit.Median(cdcRuns)
	fmt.Printf("%-44s %10s %9s %9s %8s %22s\n", "(a) closed loop, inserts on the leader", "inserts/s", "p50 ms", "p99 ms", "errors", "node cpu µs/insert")
	for _, r := range []struct {
		name string
		m    benchkit.Measured
	}{{"without CDC", p}, {"with CDC to the webhook (drain included)", c}} {
		fmt.Printf("%-44s %10.0f %9.2f %9.2f %8d %22s\n", r.name, r.m.Res.RequestsPerS, r.m.Res.Latency.P50, r.m.Res.Latency.P99, errCount(r.m.Res), r.m.CPU)
	}
	fmt.Printf("runs (inserts/s): without CDC %s; with CDC %s\n", rates(plainRuns), rates(cdcRuns))
	rateRatio := c.Res.RequestsPerS / p.Res.RequestsPerS
	fmt.Printf("CDC / no CDC: inserts/s %.3f (target >= 0.90: %s)", rateRatio, verdict(rateRatio >= 0.9))
	if p.CPU.OK && c.CPU.OK {
		cpuRatio := float64(c.CPU.Nodes) / float64(p.CPU.Nodes)
		fmt.Printf(", node CPU per insert %.3f (target <= 1.10: %s)", cpuRatio, verdict(cpuRatio <= 1.1))
	}
	fmt.Println()

	// (b) delivery lag, open loop at half the CDC closed-loop rate.
	rate := c.Res.RequestsPerS / 2
	lag, err := lagRun(withCDC, recv, rate, o.lagD)
	if err != nil {
		return fmt.Errorf("delivery lag: %w", err)
	}
	fmt.Printf("\n(b) delivery lag, open loop at %.0f inserts/s (half the closed-loop rate with CDC) for %s: %d indexes acknowledged, %d errors\n",
		rate, o.lagD, lag.indexes, lag.errors)
	fmt.Printf("    writer's ack -> receipt:    p50 %7.2f ms  p99 %7.2f ms  max %7.2f ms  (%d receipts before the ack counted as 0)\n",
		lag.ack.p50, lag.ack.p99, lag.ack.max, lag.early)
	fmt.Printf("    commit_timestamp -> receipt: p50 %7.2f ms  p99 %7.2f ms  max %7.2f ms\n", lag.commit.p50, lag.commit.p99, lag.commit.max)
	fmt.Printf("    target p99 < 250 ms (ack -> receipt): %s\n", verdict(lag.ack.p99 < 250))
	plain.Stop()
	withCDC.Stop()

	// (c) ingest from NATS against HTTP, on a third cluster.
	ing, err := ingestRun(o, dir)
	if err != nil {
		return fmt.Errorf("ingest: %w", err)
	}
	fmt.Printf("\n(c) ingest, %d single-INSERT statements\n", o.ingestN)
	fmt.Printf("%-48s %12s %22s\n", "", "stmts/s", "node cpu µs/stmt")
	fmt.Printf("%-48s %12.0f %22s\n", fmt.Sprintf("from NATS JetStream, max_in_flight %d x 3 nodes", o.ingestC/3), ing.nats, ing.natsCPU)
	fmt.Printf("%-48s %12.0f %22s\n", fmt.Sprintf("over HTTP, %d workers over the 3 nodes", o.ingestC), ing.http, ing.httpCPU)
	fmt.Printf("NATS / HTTP: %.3f\n", ing.nats/ing.http)
	fmt.Printf("\nnode cpu µs: CPU time of the three nodes together per statement, from /proc/<pid>/stat over the run\n" +
		"(with CDC: until the webhook holds the run's last write); (kernel): its share spent in the kernel.\n")
	return nil
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "NOT met"
}

func errCount(r *bench.Result) int64 {
	var n int64
	for _, v := range r.Errors {
		n += v
	}
	return n
}

func rates(ms []benchkit.Measured) string {
	var out []string
	for _, m := range ms {
		out = append(out, fmt.Sprintf("%.0f", m.Res.RequestsPerS))
	}
	return strings.Join(out, ", ")
}

// closedLoop runs the insert workload on c's leader; with a receiver, the
// CPU sample ends once the receiver holds a write made after the run, so
// that the delivery work of the run's inserts is counted.
func closedLoop(c cluster, o options, recv *webhook.Receiver) (benchkit.Measured, error) {
	ctx := context.Background()
	var profiled chan error
	if o.profile != "" {
		// The leader's and a follower's: every voter captures and keeps
		// the events, only the leader sends them.
		profiled = make(chan error, 2)
		go func() { profiled <- benchkit.Profile(c.Leader.HTTP, o.D, filepath.Join(o.profile, c.name+".prof")) }()
		go func() {
			profiled <- benchkit.Profile(c.Follower().HTTP, o.D, filepath.Join(o.profile, c.name+"-follower.prof"))
		}()
	}
	before := benchkit.CPUNow(c.Nodes)
	res, err := bench.Run(ctx, bench.Config{Addrs: []string{c.Leader.HTTP}, Workload: bench.WorkloadInsert,
		Workers: o.Workers, Duration: o.D}, nil)
	if profiled != nil {
		for range 2 {
			if perr := <-profiled; perr != nil {
				fmt.Fprintf(os.Stderr, "benchcdc: %s: profile: %v\n", c.name, perr)
			}
		}
	}
	if err != nil {
		return benchkit.Measured{}, err
	}
	if recv != nil {
		idx, err := indexedInsert(ctx, http.DefaultClient, c.Leader.Base())
		if err != nil {
			return benchkit.Measured{}, fmt.Errorf("marker write: %w", err)
		}
		wctx, cancel := context.WithTimeout(ctx, time.Minute)
		err = recv.WaitIndex(wctx, idx)
		cancel()
		if err != nil {
			return benchkit.Measured{}, err
		}
	}
	after := benchkit.CPUNow(c.Nodes)
	return benchkit.Measured{Res: res, CPU: after.Sub(before).Per(res.Requests)}, nil
}

// indexedInsert inserts one row into bench with ?raft_index and returns
// its index (API.md §1.2).
func indexedInsert(ctx context.Context, c *http.Client, base string) (uint64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/db/execute?raft_index",
		strings.NewReader(`[["INSERT INTO bench (v) VALUES (?)", "vvvvvvvvvvvvvvvv"]]`))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	status, b, err := benchkit.ReadAll(c.Do(req))
	if err != nil {
		return 0, err
	}
	var a struct {
		Results []struct {
			Error string `json:"error"`
		} `json:"results"`
		Error     string `json:"error"`
		RaftIndex uint64 `json:"raft_index"`
	}
	if status != http.StatusOK || json.Unmarshal(b, &a) != nil || a.Error != "" || len(a.Results) != 1 || a.Results[0].Error != "" || a.RaftIndex == 0 {
		return 0, fmt.Errorf("%d %.200s", status, b)
	}
	return a.RaftIndex, nil
}

type quantiles struct{ p50, p99, max float64 }

func summarize(h *hdrhistogram.Histogram) quantiles {
	ms := func(us int64) float64 { return float64(us) / 1000 }
	return quantiles{ms(h.ValueAtQuantile(50)), ms(h.ValueAtQuantile(99)), ms(h.Max())}
}

type lagResult struct {
	ack, commit     quantiles
	indexes, errors int
	early           int
}

// lagRun inserts on c's leader open loop at rate for d, noting when each
// raft_index was acknowledged, then waits for the webhook to hold the last
// one and compares its arrival times.
func lagRun(c cluster, recv *webhook.Receiver, rate float64, d time.Duration) (lagResult, error) {
	if rate <= 0 {
		return lagResult{}, errors.New("no closed-loop rate to halve")
	}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 256}}
	var mu sync.Mutex
	acked := map[uint64]time.Time{}
	errs := 0
	sem := make(chan struct{}, 256)
	var wg sync.WaitGroup
	interval := time.Duration(float64(time.Second) / rate)
	start := time.Now()
	for i := 0; ; i++ {
		at := start.Add(time.Duration(i) * interval)
		if at.Sub(start) >= d {
			break
		}
		time.Sleep(time.Until(at))
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			idx, err := indexedInsert(context.Background(), client, c.Leader.Base())
			now := time.Now()
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs++
				return
			}
			// Writes coalesced into one entry share an index: its
			// commit is no later than its first acknowledgement.
			if t, ok := acked[idx]; !ok || now.Before(t) {
				acked[idx] = now
			}
		}()
	}
	wg.Wait()
	var last uint64
	for idx := range acked {
		last = max(last, idx)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := recv.WaitIndex(ctx, last); err != nil {
		return lagResult{}, err
	}
	ackH := hdrhistogram.New(1, int64(5*time.Minute/time.Microsecond), 3)
	commitH := hdrhistogram.New(1, int64(5*time.Minute/time.Microsecond), 3)
	res := lagResult{indexes: len(acked), errors: errs}
	for idx, t := range acked {
		at, ts, ok := recv.Arrival(idx)
		if !ok {
			return lagResult{}, fmt.Errorf("index %d acknowledged but never delivered", idx)
		}
		us := at.Sub(t).Microseconds()
		if us < 1 {
			res.early++
			us = 1
		}
		_ = ackH.RecordValue(us)
		_ = commitH.RecordValue(max(at.UnixMicro()-ts, 1))
	}
	res.ack, res.commit = summarize(ackH), summarize(commitH)
	return res, nil
}

type ingestResult struct {
	nats, http       float64
	natsCPU, httpCPU benchkit.CPUPerRequest
}

// ingestRun measures statements applied per second from NATS, then the
// same INSERTs over HTTP, on one cluster consuming from an embedded
// JetStream server.
func ingestRun(o options, dir string) (ingestResult, error) {
	const subject = "bench.ingest"
	ns, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: natsserver.RANDOM_PORT,
		JetStream: true, StoreDir: filepath.Join(dir, "nats"), NoSigs: true, NoLog: true})
	if err != nil {
		return ingestResult{}, err
	}
	go ns.Start()
	defer func() { ns.Shutdown(); ns.WaitForShutdown() }()
	if !ns.ReadyForConnections(10 * time.Second) {
		return ingestResult{}, errors.New("nats server not ready")
	}
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		return ingestResult{}, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return ingestResult{}, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "INGEST", Subjects: []string{subject}}); err != nil {
		return ingestResult{}, err
	}
	// The same concurrency both ways: each node's consumer takes a third
	// of the HTTP workers' number of messages in flight.
	cfg, _ := json.Marshal(map[string]any{"url": ns.ClientURL() + "/" + subject, "max_in_flight": o.ingestC / 3})
	cfgPath := filepath.Join(dir, "ingest.json")
	if err := os.WriteFile(cfgPath, cfg, 0o600); err != nil {
		return ingestResult{}, err
	}
	c, err := startCluster(o.Skiffd, dir, "ingest", "-ingest-config", cfgPath)
	defer c.Stop()
	if err != nil {
		return ingestResult{}, err
	}
	for _, table := range []string{"ingest_nats", "bench"} {
		body := fmt.Sprintf(`["CREATE TABLE %s (id INTEGER PRIMARY KEY, v TEXT)"]`, table)
		resp, err := http.Post(c.Leader.Base()+"/db/execute", "application/json", strings.NewReader(body))
		if err != nil {
			return ingestResult{}, err
		}
		resp.Body.Close()
	}
	var res ingestResult
	body := []byte(`[["INSERT INTO ingest_nats (v) VALUES (?)", "vvvvvvvvvvvvvvvv"]]`)
	before := benchkit.CPUNow(c.Nodes)
	start := time.Now()
	for i := 0; i < o.ingestN; i++ {
		if _, err := js.PublishAsync(subject, body); err != nil {
			return res, err
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-ctx.Done():
		return res, ctx.Err()
	}
	for {
		n, err := count(c.Leader, "ingest_nats")
		if err == nil && n >= o.ingestN {
			break
		}
		if ctx.Err() != nil {
			return res, fmt.Errorf("ingested %d of %d: %v", n, o.ingestN, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	res.nats = float64(o.ingestN) / time.Since(start).Seconds()
	res.natsCPU = benchkit.CPUNow(c.Nodes).Sub(before).Per(int64(o.ingestN))

	addrs := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		addrs[i] = n.HTTP
	}
	before = benchkit.CPUNow(c.Nodes)
	r, err := bench.Run(ctx, bench.Config{Addrs: addrs, Workload: bench.WorkloadInsert, Workers: o.ingestC,
		Requests: int64(o.ingestN), NoSetup: true}, nil)
	if err != nil {
		return res, err
	}
	res.http = r.StatementsPerS
	res.httpCPU = benchkit.CPUNow(c.Nodes).Sub(before).Per(r.Requests)
	return res, nil
}

// count is COUNT(*) of table on n.
func count(n *benchkit.Node, table string) (int, error) {
	_, b, err := benchkit.ReadAll(http.Get(n.Base() + "/db/query?level=none&q=" + url.QueryEscape("SELECT COUNT(*) FROM "+table)))
	if err != nil {
		return 0, err
	}
	var doc struct {
		Results []struct {
			Values [][]int `json:"values"`
		} `json:"results"`
	}
	if err := json.NewDecoder(bytes.NewReader(b)).Decode(&doc); err != nil || len(doc.Results) != 1 || len(doc.Results[0].Values) != 1 {
		return 0, fmt.Errorf("%.200s", b)
	}
	return doc.Results[0].Values[0][0], nil
}
