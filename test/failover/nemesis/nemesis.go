// Package nemesis is the failover nemesis of `make failover` (issue 14,
// item 6) and of its short version in `make test` (test/failover_test.go):
// a 3-node skiffd cluster on loopback, clients inserting unique rows through
// random nodes (one request at a time, each with a client timeout) and
// interleaving linearizable reads of rows they know were acknowledged,
// while the leader is SIGKILLed and restarted again and again.
//
// It then checks that no acknowledged write was lost (every acknowledged
// row is on every node), that no linearizable read was stale (a read that
// began after a row was acknowledged found it) and that the replicas are
// identical (a full dump with level=none on each node, after catch-up); and
// it measures, for each kill, the longest gap without any acknowledged
// write and the time until every write in flight at the kill was answered.
package nemesis

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/skiffdb/skiff/test/benchkit"
)

// Config describes one run; zero fields take the defaults.
type Config struct {
	// Skiffd is the daemon binary.
	Skiffd string
	// Dir holds the nodes' data and logs; empty: a temporary directory,
	// removed at the end unless the run failed.
	Dir string
	// Kills is how many times the leader is killed (default 20).
	Kills int
	// Every kills at a fixed rhythm; zero: at random intervals between
	// MinInterval and MaxInterval (default 3 s and 6 s).
	Every                    time.Duration
	MinInterval, MaxInterval time.Duration
	// Clients is the number of concurrent clients (default 8), each with
	// one request at a time and ClientTimeout on each (default 5 s).
	Clients       int
	ClientTimeout time.Duration
	// ReadEvery: a client reads back its last acknowledged row
	// (level=linearizable) after every ReadEvery-th write (default 3).
	ReadEvery int
	// Seed seeds the intervals and the clients' choices (0: random).
	Seed uint64
	// Log receives progress lines (nil: discarded).
	Log io.Writer
}

func (c *Config) defaults() {
	if c.Kills == 0 {
		c.Kills = 20
	}
	if c.MinInterval == 0 {
		c.MinInterval = 3 * time.Second
	}
	if c.MaxInterval == 0 {
		c.MaxInterval = 6 * time.Second
	}
	if c.Clients == 0 {
		c.Clients = 8
	}
	if c.ClientTimeout == 0 {
		c.ClientTimeout = 5 * time.Second
	}
	if c.ReadEvery == 0 {
		c.ReadEvery = 3
	}
	if c.Seed == 0 {
		c.Seed = rand.Uint64()
	}
	if c.Log == nil {
		c.Log = io.Discard
	}
}

// Validate reports a configuration that cannot run.
func (c *Config) Validate() error {
	switch {
	case c.Skiffd == "":
		return errors.New("nemesis: no skiffd binary")
	case c.Kills < 1:
		return errors.New("nemesis: Kills < 1")
	case c.Every == 0 && c.MaxInterval < c.MinInterval:
		return errors.New("nemesis: MaxInterval < MinInterval")
	}
	return nil
}

// Kill is one leader kill and what followed.
type Kill struct {
	At     time.Duration // since the clients started
	Node   string
	Gap    time.Duration // the longest time without an acknowledged write, around and after the kill
	InFlt  int           // writes in flight at the kill
	Answer time.Duration // from the kill to the answer of the last of them
	// Last describes that write: the node it went to and its answer.
	Last string
}

// Result is a run's figures and findings.
type Result struct {
	Config   Config
	Kills    []Kill
	Duration time.Duration // clients' run
	// Writes by outcome: acknowledged, answered with an error (by HTTP
	// status, 0: no HTTP answer: refused or reset), timed out.
	Acked    int
	Failed   map[int]int
	TimedOut int
	// Timeouts names some of the writes that timed out (row, node, when).
	Timeouts []string
	// Linearizable reads: done, stale (an acknowledged row missing),
	// failed (an error or timeout).
	Reads, StaleReads, FailedReads int
	Stale                          []string
	// Lost lists acknowledged rows missing on some node; Diverged says how
	// replicas differ ("" when identical); Rows is the final row count.
	Lost     []string
	Diverged string
	Rows     int
}

// Err is nil when nothing acknowledged was lost, no read was stale and the
// replicas are identical; it says what went wrong otherwise.
func (r *Result) Err() error {
	var errs []error
	if len(r.Lost) > 0 {
		errs = append(errs, fmt.Errorf("%d acknowledged writes lost, e.g. %s", len(r.Lost), strings.Join(r.Lost[:min(5, len(r.Lost))], "; ")))
	}
	if r.StaleReads > 0 {
		errs = append(errs, fmt.Errorf("%d stale linearizable reads, e.g. %s", r.StaleReads, strings.Join(r.Stale, "; ")))
	}
	if r.Diverged != "" {
		errs = append(errs, fmt.Errorf("replicas differ: %s", r.Diverged))
	}
	if r.Acked == 0 {
		errs = append(errs, errors.New("no write was acknowledged"))
	}
	return errors.Join(errs...)
}

// Gaps returns the worst and median gap without an acknowledged write.
func (r *Result) Gaps() (worst, median time.Duration) {
	return worstMedian(r.Kills, func(k Kill) time.Duration { return k.Gap })
}

// Answers returns the worst and median time from a kill to the answer of
// the last write in flight at it.
func (r *Result) Answers() (worst, median time.Duration) {
	return worstMedian(r.Kills, func(k Kill) time.Duration { return k.Answer })
}

func worstMedian(ks []Kill, f func(Kill) time.Duration) (time.Duration, time.Duration) {
	if len(ks) == 0 {
		return 0, 0
	}
	v := make([]time.Duration, len(ks))
	for i, k := range ks {
		v[i] = f(k)
	}
	slices.Sort(v)
	n := len(v)
	med := v[n/2]
	if n%2 == 0 {
		med = (v[n/2-1] + v[n/2]) / 2
	}
	return v[n-1], med
}

// Print writes the report.
func (r *Result) Print(w io.Writer) {
	c := r.Config
	rhythm := fmt.Sprintf("at random %s–%s intervals", c.MinInterval, c.MaxInterval)
	if c.Every > 0 {
		rhythm = "every " + c.Every.String()
	}
	fmt.Fprintf(w, "\nfailover: 3 nodes, %d clients through random nodes (one request at a time, %s timeout), leader SIGKILLed and restarted %d times %s\n",
		c.Clients, c.ClientTimeout, len(r.Kills), rhythm)
	fmt.Fprintf(w, "%-5s %9s %-5s %16s %10s %22s  %s\n", "kill", "at", "node", "gap without ack", "in flight", "last in-flight answer", "(its node: answer)")
	for i, k := range r.Kills {
		fmt.Fprintf(w, "%-5d %8.2fs %-5s %15.3fs %10d %21.3fs  %s\n", i+1, k.At.Seconds(), k.Node, k.Gap.Seconds(), k.InFlt, k.Answer.Seconds(), k.Last)
	}
	gw, gm := r.Gaps()
	aw, am := r.Answers()
	var failed []string
	codes := make([]int, 0, len(r.Failed))
	nf := 0
	for code, n := range r.Failed {
		codes = append(codes, code)
		nf += n
	}
	slices.Sort(codes)
	for _, code := range codes {
		name := fmt.Sprint(code)
		if code == 0 {
			name = "no HTTP answer"
		}
		failed = append(failed, fmt.Sprintf("%s: %d", name, r.Failed[code]))
	}
	fmt.Fprintf(w, "writes in %s: %d acknowledged (%.0f/s), %d answered with an error (%s), %d timed out\n",
		r.Duration.Round(time.Millisecond), r.Acked, float64(r.Acked)/r.Duration.Seconds(), nf, strings.Join(failed, ", "), r.TimedOut)
	for _, s := range r.Timeouts {
		fmt.Fprintf(w, "  timed out: %s\n", s)
	}
	fmt.Fprintf(w, "linearizable reads of acknowledged rows: %d (%d stale, %d failed or timed out)\n", r.Reads, r.StaleReads, r.FailedReads)
	fmt.Fprintf(w, "longest time without an acknowledged write after a kill: worst %.3fs, median %.3fs (targets: 1.5s, 0.8s)\n", gw.Seconds(), gm.Seconds())
	fmt.Fprintf(w, "from a kill to the answer of the last write in flight at it: worst %.3fs, median %.3fs (target: 1.5s)\n", aw.Seconds(), am.Seconds())
	ident := "yes"
	if r.Diverged != "" {
		ident = "NO: " + r.Diverged
	}
	fmt.Fprintf(w, "acknowledged writes lost: %d; stale linearizable reads: %d; replicas identical: %s (%d rows)\n", len(r.Lost), r.StaleReads, ident, r.Rows)
	cmd := fmt.Sprintf("go run ./test/failover -skiffd %s -kills %d -seed %d", c.Skiffd, c.Kills, c.Seed)
	if c.Every > 0 {
		cmd += " -every " + c.Every.String()
	}
	fmt.Fprintf(w, "reproduce: %s\n", cmd)
}

// node is one skiffd process slot.
type node struct {
	id, http, raft, dir string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

func (n *node) url(path string) string { return "http://" + n.http + path }

// launch starts the process, its output appended to skiffd.log.
func (n *node) launch(skiffd string, extra []string) error {
	logf, err := os.OpenFile(filepath.Join(n.dir, "skiffd.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	args := append([]string{"-node-id", n.id, "-http-addr", n.http, "-raft-addr", n.raft}, extra...)
	cmd := exec.Command(skiffd, append(args, filepath.Join(n.dir, "data"))...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return err
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); logf.Close(); close(done) }()
	n.mu.Lock()
	n.cmd, n.done = cmd, done
	n.mu.Unlock()
	return nil
}

// signal sends sig and waits for the exit (SIGKILL after timeout).
func (n *node) signal(sig syscall.Signal, timeout time.Duration) {
	n.mu.Lock()
	cmd, done := n.cmd, n.done
	n.mu.Unlock()
	if cmd == nil {
		return
	}
	select {
	case <-done:
		return
	default:
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-done:
	case <-time.After(timeout):
		_ = cmd.Process.Kill()
		<-done
	}
}

var ctl = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: nil}}

func get(ctx context.Context, n *node, path string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, n.url(path), nil)
	if err != nil {
		return 0, nil, err
	}
	resp, err := ctl.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

func post(ctx context.Context, c *http.Client, n *node, path string, body any) (int, []byte, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return 0, nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, n.url(path), bytes.NewReader(b))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	return resp.StatusCode, out, err
}

// waitReady waits for /readyz 200.
func waitReady(ctx context.Context, n *node, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		if st, _, err := get(ctx, n, "/readyz"); err == nil && st == http.StatusOK {
			return nil
		}
		n.mu.Lock()
		done := n.done
		n.mu.Unlock()
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready within %s (see %s)", n.id, timeout, filepath.Join(n.dir, "skiffd.log"))
		case <-done:
			return fmt.Errorf("%s: %w before it was ready (see %s)", n.id, errExited, filepath.Join(n.dir, "skiffd.log"))
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// errExited: a node's process ended while it was awaited.
var errExited = errors.New("process exited")

// formCluster starts three founding voters with data under base
// (-bootstrap-expect 3, API.md 5: no node is a learner when the first
// kill comes; restarts need neither flag) and waits for them to be ready.
func formCluster(ctx context.Context, skiffd, base string) ([]*node, error) {
	nodes := make([]*node, 3)
	var raftAddrs []string
	for i := range nodes {
		n := &node{id: fmt.Sprintf("n%d", i+1), dir: filepath.Join(base, fmt.Sprintf("n%d", i+1))}
		var err error
		if n.http, err = benchkit.FreeAddr(); err != nil {
			return nil, err
		}
		if n.raft, err = benchkit.FreeAddr(); err != nil {
			return nil, err
		}
		if err := os.MkdirAll(n.dir, 0o755); err != nil {
			return nil, err
		}
		nodes[i] = n
		raftAddrs = append(raftAddrs, n.raft)
	}
	first := []string{"-bootstrap-expect", "3", "-join", strings.Join(raftAddrs, ",")}
	for i, n := range nodes {
		if err := n.launch(skiffd, first); err != nil {
			return nodes[:i], err
		}
	}
	for _, n := range nodes {
		if err := waitReady(ctx, n, 2*time.Minute); err != nil {
			return nodes, err
		}
	}
	return nodes, nil
}

// leader returns the node whose /status says it leads.
func leader(ctx context.Context, nodes []*node, timeout time.Duration) (*node, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		for _, n := range nodes {
			st, b, err := get(ctx, n, "/status")
			if err != nil || st != http.StatusOK {
				continue
			}
			var doc struct {
				Store struct {
					Raft struct {
						State string `json:"state"`
					} `json:"raft"`
				} `json:"store"`
			}
			if json.Unmarshal(b, &doc) == nil && doc.Store.Raft.State == "Leader" {
				return n, nil
			}
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("no leader within %s", timeout)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// write is one client write: when it was sent and answered, and how.
type write struct {
	start, end time.Time
	id, node   string
	acked      bool
	status     int // HTTP status; 0: no HTTP answer
	timedOut   bool
}

func (w write) describe() string {
	switch {
	case w.acked:
		return w.node + ": acknowledged"
	case w.timedOut:
		return w.node + ": timed out"
	case w.status == 0:
		return w.node + ": no HTTP answer"
	}
	return fmt.Sprintf("%s: %d", w.node, w.status)
}

// client is one of the writers; its records are its own until the run ends.
type client struct {
	id     int
	rng    *rand.Rand
	http   *http.Client
	writes []write
	acked  []string
	reads  int
	failed int
	stale  []string
}

// Run runs the nemesis. The error is for a run that could not be carried
// out (the cluster did not form, a node did not come back); the findings
// are in the Result (Result.Err).
func Run(ctx context.Context, cfg Config) (res *Result, err error) {
	cfg.defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	base := cfg.Dir
	if base == "" {
		if base, err = os.MkdirTemp("", "skiff-failover-"); err != nil {
			return nil, err
		}
		defer func() {
			if err == nil && res != nil && res.Err() == nil {
				os.RemoveAll(base)
			} else {
				fmt.Fprintf(cfg.Log, "nodes' data and logs kept in %s\n", base)
			}
		}()
	}
	rng := rand.New(rand.NewPCG(cfg.Seed, cfg.Seed>>1|1))
	var nodes []*node
	defer func() {
		for _, n := range nodes {
			n.signal(syscall.SIGTERM, 40*time.Second)
		}
	}()
	// A port picked free may be taken before the node binds it (other
	// processes on the machine): the cluster is formed again on new ports.
	for attempt := 1; ; attempt++ {
		if nodes, err = formCluster(ctx, cfg.Skiffd, filepath.Join(base, fmt.Sprintf("try%d", attempt))); err == nil {
			break
		}
		for _, n := range nodes {
			n.signal(syscall.SIGKILL, 10*time.Second)
		}
		if attempt == 3 || !errors.Is(err, errExited) {
			return nil, err
		}
		fmt.Fprintf(cfg.Log, "forming the cluster again: %v\n", err)
	}
	ld, err := leader(ctx, nodes, time.Minute)
	if err != nil {
		return nil, err
	}
	if st, b, err := post(ctx, ctl, ld, "/db/execute", []string{"CREATE TABLE t (id TEXT PRIMARY KEY, client INTEGER, seq INTEGER)"}); err != nil || st != http.StatusOK || bytes.Contains(b, []byte(`"error"`)) {
		return nil, fmt.Errorf("create table: %d %s %v", st, b, err)
	}
	fmt.Fprintf(cfg.Log, "cluster formed (%s leads); %d clients writing from %s; %d kills (seed %d)\n",
		ld.id, cfg.Clients, time.Now().UTC().Format("15:04:05.000"), cfg.Kills, cfg.Seed)

	// Clients.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	clients := make([]*client, cfg.Clients)
	began := time.Now()
	for i := range clients {
		c := &client{id: i, rng: rand.New(rand.NewPCG(cfg.Seed+uint64(i)+1, uint64(i))),
			http: &http.Client{Timeout: cfg.ClientTimeout, Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 4}}}
		clients[i] = c
		wg.Add(1)
		go func() { defer wg.Done(); c.run(nodes, cfg, stop) }()
	}
	stopClients := func() {
		select {
		case <-stop:
		default:
			close(stop)
			wg.Wait()
		}
	}
	defer stopClients()

	// Kills.
	interval := func() time.Duration {
		if cfg.Every > 0 {
			return cfg.Every
		}
		return cfg.MinInterval + time.Duration(rng.Int64N(int64(cfg.MaxInterval-cfg.MinInterval)+1))
	}
	type kill struct {
		at   time.Time
		node *node
	}
	var kills []kill
	for k := 0; k < cfg.Kills; k++ {
		select {
		case <-time.After(interval()):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		ld, err := leader(ctx, nodes, 30*time.Second)
		if err != nil {
			return nil, err
		}
		at := time.Now()
		ld.signal(syscall.SIGKILL, 10*time.Second)
		kills = append(kills, kill{at: at, node: ld})
		if err := ld.launch(cfg.Skiffd, nil); err != nil {
			return nil, err
		}
		fmt.Fprintf(cfg.Log, "kill %d: %s at +%.2fs, restarted\n", k+1, ld.id, at.Sub(began).Seconds())
	}
	// The last kill gets an interval too, then the clients stop.
	select {
	case <-time.After(interval()):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	ended := time.Now()
	stopClients()

	// Figures.
	res = &Result{Config: cfg, Duration: ended.Sub(began), Failed: map[int]int{}}
	var all []write
	for _, c := range clients {
		all = append(all, c.writes...)
		res.Reads += c.reads
		res.FailedReads += c.failed
		res.StaleReads += len(c.stale)
		if len(res.Stale) < 5 {
			res.Stale = append(res.Stale, c.stale[:min(len(c.stale), 5-len(res.Stale))]...)
		}
	}
	var acks []time.Time
	for _, w := range all {
		switch {
		case w.acked:
			res.Acked++
			acks = append(acks, w.end)
		case w.timedOut:
			res.TimedOut++
			if len(res.Timeouts) < 10 {
				res.Timeouts = append(res.Timeouts, fmt.Sprintf("%s through %s sent at +%.3fs", w.id, w.node, w.start.Sub(began).Seconds()))
			}
		default:
			res.Failed[w.status]++
		}
	}
	slices.SortFunc(acks, func(a, b time.Time) int { return a.Compare(b) })
	for i, k := range kills {
		next := ended
		if i+1 < len(kills) {
			next = kills[i+1].at
		}
		kr := Kill{At: k.at.Sub(began), Node: k.node.id, Gap: longestGap(acks, k.at, next, began, ended)}
		for _, w := range all {
			if w.start.Before(k.at) && w.end.After(k.at) {
				kr.InFlt++
				if d := w.end.Sub(k.at); d > kr.Answer {
					kr.Answer, kr.Last = d, w.describe()
				}
			}
		}
		res.Kills = append(res.Kills, kr)
	}

	// Checks: every node back and caught up, then the same rows
	// everywhere, every acknowledged one among them.
	for _, n := range nodes {
		if err := waitReady(ctx, n, 2*time.Minute); err != nil {
			return nil, err
		}
	}
	dumps, err := dumpAll(ctx, nodes)
	if err != nil {
		return nil, err
	}
	res.Rows = len(dumps[0])
	for i := 1; i < len(dumps); i++ {
		if d := diff(dumps[0], dumps[i]); d != "" {
			res.Diverged = fmt.Sprintf("%s and %s: %s", nodes[0].id, nodes[i].id, d)
			break
		}
	}
	for i, d := range dumps {
		have := make(map[string]bool, len(d))
		for _, row := range d {
			have[row.id] = true
		}
		for _, c := range clients {
			for _, id := range c.acked {
				if !have[id] {
					res.Lost = append(res.Lost, fmt.Sprintf("%s missing on %s", id, nodes[i].id))
				}
			}
		}
	}
	return res, nil
}

// longestGap is the longest time without an acknowledgement from the kill
// at from until the next kill at to: the interval spanning from counts
// whole (since the last ack before the kill), one spanning to counts up
// to to (the rest belongs to the next kill).
func longestGap(acks []time.Time, from, to, began, ended time.Time) time.Duration {
	prev := began
	i, _ := slices.BinarySearchFunc(acks, from, func(a, t time.Time) int { return a.Compare(t) })
	if i > 0 {
		prev = acks[i-1]
	}
	var gap time.Duration
	for ; i < len(acks) && acks[i].Before(to); i++ {
		gap = max(gap, acks[i].Sub(prev))
		prev = acks[i]
	}
	if ended.Before(to) {
		to = ended
	}
	return max(gap, to.Sub(prev))
}

// run is one client's loop: a write through a random node, and after every
// ReadEvery-th acknowledged one a linearizable read of it through another
// random node, until stop.
func (c *client) run(nodes []*node, cfg Config, stop <-chan struct{}) {
	for seq := 0; ; seq++ {
		select {
		case <-stop:
			return
		default:
		}
		id := fmt.Sprintf("c%d-%d", c.id, seq)
		n := nodes[c.rng.IntN(len(nodes))]
		w := write{start: time.Now(), id: id, node: n.id}
		st, b, err := post(context.Background(), c.http, n, "/db/execute",
			[][]any{{"INSERT INTO t (id, client, seq) VALUES (?, ?, ?)", id, c.id, seq}})
		w.end, w.status = time.Now(), st
		var out struct {
			Results []struct {
				RowsAffected int    `json:"rows_affected"`
				Error        string `json:"error"`
			} `json:"results"`
		}
		switch {
		case err != nil:
			var ne net.Error
			w.timedOut = errors.As(err, &ne) && ne.Timeout()
		case st == http.StatusOK && json.Unmarshal(b, &out) == nil && len(out.Results) == 1 && out.Results[0].Error == "" && out.Results[0].RowsAffected == 1:
			w.acked = true
			c.acked = append(c.acked, id)
		}
		c.writes = append(c.writes, w)
		if !w.acked {
			// An error answered at once (a killed node refusing) must not
			// make the client spin.
			if err != nil && !w.timedOut {
				select {
				case <-stop:
					return
				case <-time.After(10 * time.Millisecond):
				}
			}
			continue
		}
		if len(c.acked)%cfg.ReadEvery == 0 {
			c.read(nodes[c.rng.IntN(len(nodes))], id)
		}
	}
}

// read checks, level=linearizable, that the acknowledged row id is there.
func (c *client) read(n *node, id string) {
	st, b, err := post(context.Background(), c.http, n, "/db/query?level=linearizable",
		[][]any{{"SELECT COUNT(*) FROM t WHERE id = ?", id}})
	var out struct {
		Results []struct {
			Values [][]int64 `json:"values"`
			Error  string    `json:"error"`
		} `json:"results"`
	}
	if err != nil || st != http.StatusOK || json.Unmarshal(b, &out) != nil || len(out.Results) != 1 || out.Results[0].Error != "" {
		c.failed++
		return
	}
	c.reads++
	if v := out.Results[0].Values; len(v) != 1 || len(v[0]) != 1 || v[0][0] != 1 {
		c.stale = append(c.stale, fmt.Sprintf("%s read through %s after its acknowledgement: %s", id, n.id, b))
	}
}

type row struct {
	id          string
	client, seq int64
}

// dumpAll reads every row from every node with level=none, once each node
// has applied as much as the leader had committed (a linearizable count
// through the leader first, then each node's local count until it matches).
func dumpAll(ctx context.Context, nodes []*node) ([][]row, error) {
	ld, err := leader(ctx, nodes, time.Minute)
	if err != nil {
		return nil, err
	}
	want, err := count(ctx, ld, "linearizable")
	if err != nil {
		return nil, err
	}
	out := make([][]row, len(nodes))
	for i, n := range nodes {
		deadline := time.Now().Add(time.Minute)
		for {
			got, err := count(ctx, n, "none")
			if err == nil && got >= want {
				break
			}
			if time.Now().After(deadline) {
				return nil, fmt.Errorf("%s did not catch up with %d rows within a minute (has %d, %v)", n.id, want, got, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
		st, b, err := post(ctx, ctl, n, "/db/query?level=none", []string{"SELECT id, client, seq FROM t ORDER BY id"})
		var doc struct {
			Results []struct {
				Values [][]any `json:"values"`
				Error  string  `json:"error"`
			} `json:"results"`
		}
		if err != nil || st != http.StatusOK || json.Unmarshal(b, &doc) != nil || len(doc.Results) != 1 || doc.Results[0].Error != "" {
			return nil, fmt.Errorf("dump of %s: %d %.200s %v", n.id, st, b, err)
		}
		for _, v := range doc.Results[0].Values {
			if len(v) != 3 {
				return nil, fmt.Errorf("dump of %s: row %v", n.id, v)
			}
			id, _ := v[0].(string)
			cl, _ := v[1].(float64)
			sq, _ := v[2].(float64)
			out[i] = append(out[i], row{id: id, client: int64(cl), seq: int64(sq)})
		}
	}
	return out, nil
}

func count(ctx context.Context, n *node, level string) (int64, error) {
	st, b, err := post(ctx, ctl, n, "/db/query?level="+level, []string{"SELECT COUNT(*) FROM t"})
	var doc struct {
		Results []struct {
			Values [][]int64 `json:"values"`
		} `json:"results"`
	}
	if err != nil || st != http.StatusOK || json.Unmarshal(b, &doc) != nil || len(doc.Results) != 1 || len(doc.Results[0].Values) != 1 || len(doc.Results[0].Values[0]) != 1 {
		return 0, fmt.Errorf("count on %s: %d %.200s %v", n.id, st, b, err)
	}
	return doc.Results[0].Values[0][0], nil
}

// diff describes the first difference between two dumps ("" if none).
func diff(a, b []row) string {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return fmt.Sprintf("row %d is %v on one, %v on the other", i, a[i], b[i])
		}
	}
	if len(a) != len(b) {
		return fmt.Sprintf("%d rows against %d", len(a), len(b))
	}
	return ""
}
