// Command soak is `make soak-restart`'s driver (issue 5): the scenario Skiff
// exists for, at a size given in megabytes. It starts a 3-node cluster on
// loopback from a built skiffd, loads a database of -size-mb with
// recursive-CTE INSERTs (small log entries, large tables), then, while
// /status, /nodes, /readyz and point reads are polled on every node without
// pause:
//
//  1. stops a follower with SIGTERM and restarts it;
//  2. kills a follower with SIGKILL and restarts it;
//  3. forces a snapshot on the leader (/snapshot?trailing_logs=0, which
//     compacts its log) and starts a fourth node that joins, so it receives
//     the whole database as a stream.
//
// It prints the time from launch to ready of each restart and the join,
// every poll's answers by status code, requests that got no answer, and
// each node's peak RSS (sampled), then checks that all nodes hold the same
// data.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/skiffdb/skiff/test/benchkit"
)

func main() {
	skiffd := flag.String("skiffd", "bin/skiffd", "skiffd binary")
	sizeMB := flag.Int("size-mb", 10000, "Database size to load, MB")
	dir := flag.String("dir", "", "Working directory (default: a new temporary directory, removed at the end)")
	readyTimeout := flag.Duration("ready-timeout", 30*time.Minute, "Bound on each wait for a node to be ready")
	pollPause := flag.Duration("poll-pause", 0, "Pause of each of the 8 pollers between two requests (0: back to back, which keeps both cores of a small machine busy)")
	flag.Parse()
	if err := run(*skiffd, *sizeMB, *dir, *readyTimeout, *pollPause); err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		os.Exit(1)
	}
}

// rowBytes is each row's blob; rowsPerInsert rows go in one statement
// (64 MiB: one log entry of about 200 bytes).
const (
	rowBytes      = 4096
	rowsPerInsert = 16384
)

type node struct {
	id, http, raft, dir string
	join                string

	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan struct{}
	down    bool  // stopped on purpose: refused connections are expected
	booting bool  // launched, not yet answering: refusals are expected too
	peakRSS int64 // over every run, sampled
}

func newNode(base, id, join string) (*node, error) {
	h, err := benchkit.FreeAddr()
	if err != nil {
		return nil, err
	}
	r, err := benchkit.FreeAddr()
	if err != nil {
		return nil, err
	}
	return &node{id: id, http: h, raft: r, dir: filepath.Join(base, id), join: join}, nil
}

func (n *node) url(path string) string { return "http://" + n.http + path }

// launch starts the node's process; its stderr goes to a log file.
func (n *node) launch(skiffd string) error {
	if err := os.MkdirAll(n.dir, 0o755); err != nil {
		return err
	}
	logf, err := os.OpenFile(filepath.Join(n.dir, "skiffd.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	args := []string{"-node-id", n.id, "-http-addr", n.http, "-raft-addr", n.raft, "-raft-log-level", "WARN"}
	// Extra flags for every node, for diagnosis (e.g. "-log-level debug").
	args = append(args, strings.Fields(os.Getenv("SOAK_SKIFFD_ARGS"))...)
	if n.join != "" {
		args = append(args, "-join", n.join)
	}
	cmd := exec.Command(skiffd, append(args, filepath.Join(n.dir, "data"))...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return err
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); logf.Close(); close(done) }()
	n.mu.Lock()
	n.cmd, n.done, n.down, n.booting = cmd, done, false, true
	n.mu.Unlock()
	go n.sampleRSS(cmd.Process.Pid, done)
	return nil
}

// pid is the node's last started process (0: none started).
func (n *node) pid() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil || n.cmd.Process == nil {
		return 0
	}
	return n.cmd.Process.Pid
}

// ioBytes is what a process read from and wrote to storage.
type ioBytes struct{ read, write int64 }

func (a ioBytes) minus(b ioBytes) ioBytes { return ioBytes{a.read - b.read, a.write - b.write} }

// diskIO reads the running process's read_bytes and write_bytes
// (/proc/PID/io): bytes that reached or came from storage, not the page
// cache. Zero when unknown.
func (n *node) diskIO() ioBytes {
	var out ioBytes
	pid := n.pid()
	if pid == 0 {
		return out
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
	if err != nil {
		return out
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ": ")
		if !ok {
			continue
		}
		x, _ := strconv.ParseInt(v, 10, 64)
		switch k {
		case "read_bytes":
			out.read = x
		case "write_bytes":
			out.write = x
		}
	}
	return out
}

// sampleRSS records the process's peak resident set (VmHWM), every 200 ms
// (it is lost with a killed process).
func (n *node) sampleRSS(pid int, done <-chan struct{}) {
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
		}
		if rss := benchkit.ProcPeakRSS(pid); rss > 0 {
			n.mu.Lock()
			n.peakRSS = max(n.peakRSS, rss)
			n.mu.Unlock()
		}
	}
}

// stop signals the process and waits for it to exit.
func (n *node) stop(sig syscall.Signal, timeout time.Duration) error {
	n.mu.Lock()
	cmd, done := n.cmd, n.done
	n.down = true
	n.mu.Unlock()
	if cmd == nil {
		return nil
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-done:
	case <-time.After(timeout):
		_ = cmd.Process.Kill()
		<-done
		return fmt.Errorf("%s: no exit within %s of %v", n.id, timeout, sig)
	}
	if sig == syscall.SIGTERM && cmd.ProcessState.ExitCode() != 0 {
		return fmt.Errorf("%s: exit status %d after SIGTERM", n.id, cmd.ProcessState.ExitCode())
	}
	return nil
}

// isDown: the node is stopped on purpose, or launched and not yet serving.
func (n *node) isDown() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.down || n.booting
}

// answered records that the node serves HTTP.
func (n *node) answered() {
	n.mu.Lock()
	n.booting = false
	n.mu.Unlock()
}

var client = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 16}}

// waitReady polls /readyz until 200 and returns the time since from.
func waitReady(n *node, from time.Time, timeout time.Duration) (time.Duration, error) {
	if benchkit.Ready(client, n.url(""), from.Add(timeout), 20*time.Millisecond) {
		return time.Since(from), nil
	}
	return 0, fmt.Errorf("%s not ready within %s (see %s)", n.id, timeout, filepath.Join(n.dir, "skiffd.log"))
}

func post(n *node, path, body string) (int, string, error) {
	c := &http.Client{Timeout: 30 * time.Minute}
	st, b, err := benchkit.ReadAll(c.Post(n.url(path), "application/json", strings.NewReader(body)))
	return st, string(b), err
}

func get(n *node, path string) (int, string, error) {
	st, b, err := benchkit.ReadAll(client.Get(n.url(path)))
	return st, string(b), err
}

// tally counts poll answers by endpoint and status ("no answer" is 0).
type tally struct {
	mu       sync.Mutex
	counts   map[string]map[int]int
	downRefs int // refused while the node was down on purpose
	slowest  map[string]time.Duration
	samples  []string
}

func (t *tally) add(what string, status int, took time.Duration, errText string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.counts[what] == nil {
		t.counts[what] = map[int]int{}
	}
	t.counts[what][status]++
	t.slowest[what] = max(t.slowest[what], took)
	if status == 0 && len(t.samples) < 10 {
		t.samples = append(t.samples, what+": "+errText)
	}
}

// poll requests one node's status endpoints and point reads in turn until
// stop, pausing pause between two requests (0: back to back).
func poll(n *node, maxID func() int64, t *tally, pause time.Duration, stop <-chan struct{}, wg *sync.WaitGroup) {
	defer wg.Done()
	paths := []string{"/status", "/nodes", "/readyz", "read"}
	for i := 0; ; i++ {
		select {
		case <-stop:
			return
		default:
		}
		if pause > 0 && i > 0 {
			time.Sleep(pause)
		}
		p := paths[i%len(paths)]
		u := p
		if p == "read" {
			id := int64(1)
			if m := maxID(); m > 1 {
				id = 1 + rand.Int64N(m)
			}
			u = "/db/query?level=none&q=" + url.QueryEscape(fmt.Sprintf("SELECT length(b) FROM big WHERE id = %d", id))
		}
		began := time.Now()
		resp, err := client.Get(n.url(u))
		took := time.Since(began)
		if err != nil {
			if n.isDown() {
				t.mu.Lock()
				t.downRefs++
				t.mu.Unlock()
				time.Sleep(10 * time.Millisecond)
				continue
			}
			t.add(n.id+" "+p, 0, took, err.Error())
			continue
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		n.answered()
		t.add(n.id+" "+p, resp.StatusCode, took, "")
	}
}

func run(skiffd string, sizeMB int, base string, readyTimeout, pollPause time.Duration) (err error) {
	if base == "" {
		if base, err = os.MkdirTemp(".", "soak-data-"); err != nil {
			return err
		}
		defer os.RemoveAll(base)
	}
	fmt.Printf("soak: %d MB database, 3 nodes + 1 joiner, data under %s\n", sizeMB, base)
	var nodes []*node
	defer func() {
		for _, n := range nodes {
			if !n.isDown() {
				if serr := n.stop(syscall.SIGTERM, time.Minute); serr != nil && err == nil {
					err = serr
				}
			}
		}
	}()
	n1, err := newNode(base, "n1", "")
	if err != nil {
		return err
	}
	nodes = append(nodes, n1)
	if err := n1.launch(skiffd); err != nil {
		return err
	}
	if _, err := waitReady(n1, time.Now(), time.Minute); err != nil {
		return err
	}
	for _, id := range []string{"n2", "n3"} {
		n, err := newNode(base, id, n1.raft)
		if err != nil {
			return err
		}
		nodes = append(nodes, n)
		if err := n.launch(skiffd); err != nil {
			return err
		}
	}
	for _, n := range nodes {
		if _, err := waitReady(n, time.Now(), 2*time.Minute); err != nil {
			return err
		}
	}

	// Load.
	if st, body, err := post(n1, "/db/execute", `["CREATE TABLE big (id INTEGER PRIMARY KEY, b BLOB)"]`); err != nil || st != 200 {
		return fmt.Errorf("create: %d %s %v", st, body, err)
	}
	rows := int64(sizeMB) << 20 / rowBytes
	var loaded struct {
		sync.Mutex
		n int64
	}
	maxID := func() int64 { loaded.Lock(); defer loaded.Unlock(); return loaded.n }
	began := time.Now()
	for done := int64(0); done < rows; {
		k := min(rowsPerInsert, rows-done)
		st, body, err := post(n1, "/db/execute?timeout=30m", fmt.Sprintf(
			`["WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i < %d) INSERT INTO big (b) SELECT randomblob(%d) FROM c"]`, k, rowBytes))
		if err != nil || st != 200 || strings.Contains(body, `"error"`) {
			return fmt.Errorf("load: %d %s %v", st, body, err)
		}
		done += k
		loaded.Lock()
		loaded.n = done
		loaded.Unlock()
		fmt.Printf("\rloaded %d of %d MB (%.0f MB/s)", done*rowBytes>>20, rows*rowBytes>>20, float64(done*rowBytes>>20)/time.Since(began).Seconds())
	}
	fmt.Printf("\nloaded %d rows of %d bytes in %s\n", rows, rowBytes, time.Since(began).Round(time.Second))
	// Every node has applied the load before the scenario starts.
	for _, n := range nodes {
		if _, err := waitReady(n, time.Now(), readyTimeout); err != nil {
			return err
		}
	}

	// Poll from here on (-poll-pause between two requests of a poller).
	tl := &tally{counts: map[string]map[int]int{}, slowest: map[string]time.Duration{}}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	pollNode := func(n *node) {
		wg.Add(2)
		go poll(n, maxID, tl, pollPause, stop, &wg)
		go poll(n, maxID, tl, pollPause, stop, &wg)
	}
	for _, n := range nodes {
		pollNode(n)
	}
	leader, follower, err := roles(nodes)
	if err != nil {
		return err
	}
	type result struct {
		what  string
		ready time.Duration
	}
	var results []result
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		time.Sleep(2 * time.Second)
		if err := follower.stop(sig, 2*time.Minute); err != nil {
			return err
		}
		launched := time.Now()
		if err := follower.launch(skiffd); err != nil {
			return err
		}
		took, err := waitReady(follower, launched, readyTimeout)
		if err != nil {
			return err
		}
		fmt.Printf("%s restarted after %s: ready in %s\n", follower.id, sigName[sig], took.Round(time.Millisecond))
		results = append(results, result{"follower restart after " + sigName[sig], took})
	}

	// A joiner of a compacted cluster receives the database whole. One
	// write first: a snapshot already taken at the last index (the
	// -raft-snap-wal-size job takes one while loading) makes /snapshot
	// answer 204 without compacting, and the joiner would replay the log
	// instead of receiving a snapshot.
	if st, body, err := post(leader, "/db/execute", `["CREATE TABLE IF NOT EXISTS soak_mark (x)"]`); err != nil || st != 200 {
		return fmt.Errorf("mark write: %d %s %v", st, body, err)
	}
	if st, body, err := post(leader, "/snapshot?trailing_logs=0", ""); err != nil || st != 200 {
		return fmt.Errorf("/snapshot: %d %s %v", st, body, err)
	}
	n4, err := newNode(base, "n4", leader.raft)
	if err != nil {
		return err
	}
	live, liveSize, err := liveFile(leader)
	if err != nil {
		return err
	}
	joinCP, err := cpSync(live, base)
	if err != nil {
		return err
	}
	fmt.Printf("cp+sync of the leader's SQLite file (%.0f MB): %s\n", float64(liveSize)/1e6, joinCP.Round(time.Millisecond))
	others := append([]*node(nil), nodes...)
	before := tl.snapshotCounts()
	stopWrites := make(chan struct{})
	writes := writeDuring(leader, stopWrites)
	nodes = append(nodes, n4)
	leaderIO0 := leader.diskIO()
	launched := time.Now()
	if err := n4.launch(skiffd); err != nil {
		return err
	}
	if dir := os.Getenv("SOAK_PPROF_DIR"); dir != "" {
		profileJoin(dir, leader, n4)
	}
	stopTrace := make(chan struct{})
	if os.Getenv("SOAK_TRACE_JOIN") != "" {
		go traceJoin(leader, n4, stopTrace)
	}
	pollNode(n4)
	took, err := waitReady(n4, launched, readyTimeout)
	close(stopTrace)
	if err != nil {
		return err
	}
	fmt.Printf("n4 joined (snapshot of the whole database): ready in %s\n", took.Round(time.Millisecond))
	leaderIO, joinerIO := leader.diskIO().minus(leaderIO0), n4.diskIO()
	fmt.Printf("storage I/O from the joiner's start to ready (/proc/PID/io): leader read %d MB, wrote %d MB; joiner read %d MB, wrote %d MB\n",
		leaderIO.read>>20, leaderIO.write>>20, joinerIO.read>>20, joinerIO.write>>20)
	results = append(results, result{"new node joining (snapshot stream)", took})
	close(stopWrites)
	<-writes.done
	caughtUp, err := waitSame(leader, n4, "soak_mark", readyTimeout)
	if err != nil {
		return err
	}
	joinPolls, joinBad := tl.windowFailures(before, others)
	fmt.Printf("during the join: %d writes on the leader answered, %d failed; n4 held all of them %s after ready; %d polls (%.0f/s, -poll-pause %s), failures: %v\n",
		writes.ok, writes.failed, caughtUp.Round(time.Millisecond), joinPolls, float64(joinPolls)/took.Seconds(), pollPause, joinBad)
	// Failed checks are reported after every figure is measured.
	var problems []string
	if writes.failed > 0 || writes.ok == 0 {
		problems = append(problems, fmt.Sprintf("writes on the leader during the join: %d answered, %d failed (last: %s)", writes.ok, writes.failed, writes.lastErr))
	}
	if len(joinBad) > 0 {
		problems = append(problems, fmt.Sprintf("polls during the join: %v", joinBad))
	}
	time.Sleep(2 * time.Second)
	close(stop)
	wg.Wait()

	// Same data everywhere: the highest row and samples of three blobs.
	fp := "SELECT MAX(id), (SELECT hex(substr(b, 1, 32)) FROM big WHERE id = 1), (SELECT hex(substr(b, 1, 32)) FROM big WHERE id = " +
		strconv.FormatInt(rows/2, 10) + "), (SELECT hex(b) FROM big WHERE id = " + strconv.FormatInt(rows, 10) + ") FROM big"
	var want string
	for _, n := range nodes {
		st, body, err := get(n, "/db/query?level=none&q="+url.QueryEscape(fp))
		if err != nil || st != 200 {
			return fmt.Errorf("%s fingerprint: %d %v", n.id, st, err)
		}
		if want == "" {
			want = body
		} else if body != want {
			return fmt.Errorf("%s holds different data: %.200s, want %.200s", n.id, body, want)
		}
	}

	// /db/backup of the leader, then /boot and /db/load of that file on
	// fresh clusters; the first cluster is stopped first, its figures
	// taken.
	bpath := filepath.Join(base, "backup.sqlite")
	backupTook, backupBytes, err := backupTo(leader, bpath)
	if err != nil {
		return err
	}
	defer os.Remove(bpath)
	// The first cluster's figures are taken: stop it and drop its data
	// (the logs stay), so that a 10 GB run needs room for four copies
	// at most, not eight.
	for _, n := range nodes {
		if err := n.stop(syscall.SIGTERM, time.Minute); err != nil {
			return err
		}
		if err := os.RemoveAll(filepath.Join(n.dir, "data")); err != nil {
			return err
		}
	}
	fileCP, err := cpSync(bpath, base)
	if err != nil {
		return err
	}
	fmt.Printf("/db/backup: %.0f MB in %s (%.0f MB/s); cp+sync of that file %s\n", float64(backupBytes)/1e6,
		backupTook.Round(time.Millisecond), float64(backupBytes)/1e6/backupTook.Seconds(), fileCP.Round(time.Millisecond))
	var uploads []uploadResult
	for _, route := range []string{"/boot", "/db/load"} {
		res, err := uploadCluster(skiffd, base, route, bpath, fp, want, readyTimeout)
		if err != nil {
			return err
		}
		fmt.Printf("%s of %.0f MB on a new node: %s; then 2 nodes joined: all 3 serve every row %s after the upload began (cp+sync just before: %s)\n",
			route, float64(backupBytes)/1e6, res.upload.Round(time.Millisecond), res.all3.Round(time.Millisecond), res.cpSync.Round(time.Millisecond))
		uploads = append(uploads, res)
	}

	// Report.
	fmt.Printf("\n%-40s %12s\n", "event", "ready after")
	for _, r := range results {
		fmt.Printf("%-40s %12s\n", r.what, r.ready.Round(time.Millisecond))
	}
	fmt.Printf("\n%-24s %-40s %s\n", "poll", "answers by status (0 = no answer)", "slowest")
	var keys []string
	for k := range tl.counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	noAnswer := 0
	for _, k := range keys {
		noAnswer += tl.counts[k][0]
		var codes []int
		for c := range tl.counts[k] {
			codes = append(codes, c)
		}
		sort.Ints(codes)
		var parts []string
		for _, c := range codes {
			parts = append(parts, fmt.Sprintf("%d:%d", c, tl.counts[k][c]))
		}
		fmt.Printf("%-24s %-40s %s\n", k, strings.Join(parts, " "), tl.slowest[k].Round(time.Millisecond))
	}
	fmt.Printf("refused while a node was down on purpose or not yet listening: %d\n", tl.downRefs)
	for _, s := range tl.samples {
		fmt.Println("  no answer:", s)
	}
	fmt.Printf("\n%-6s %s\n", "node", "peak RSS (sampled every 200 ms)")
	for _, n := range nodes {
		fmt.Printf("%-6s %d MiB\n", n.id, n.peakRSS>>20)
	}
	for _, u := range uploads {
		var ids []string
		for id := range u.peakRSS {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		for _, id := range ids {
			fmt.Printf("%-6s %d MiB (%s cluster)\n", id, u.peakRSS[id]>>20, u.route)
		}
	}
	fmt.Printf("all %d nodes hold the same data\n", len(nodes))

	ratio := func(d, base time.Duration) string { return fmt.Sprintf("%.2f", d.Seconds()/base.Seconds()) }
	fmt.Printf("\nissue 17 summary (%.0f MB SQLite file; each ratio to cp+sync of the same file just before: %s of the leader's file before the join, %s of the backup after it",
		float64(liveSize)/1e6, joinCP.Round(time.Millisecond), fileCP.Round(time.Millisecond))
	for _, u := range uploads {
		fmt.Printf(", %s before %s", u.cpSync.Round(time.Millisecond), u.route)
	}
	fmt.Println(")")
	fmt.Printf("%-44s %10s %8s %10s\n", "figure", "time", "MB/s", "x cp+sync")
	fmt.Printf("%-44s %10s %8.0f %10s\n", "join: start to ready with every row", took.Round(time.Millisecond),
		float64(liveSize)/1e6/took.Seconds(), ratio(took, joinCP))
	for _, u := range uploads {
		fmt.Printf("%-44s %10s %8.0f %10s\n", u.route+": upload to ready on 1 node", u.upload.Round(time.Millisecond),
			float64(backupBytes)/1e6/u.upload.Seconds(), ratio(u.upload, u.cpSync))
		fmt.Printf("%-44s %10s %8.0f %10s\n", u.route+": until all 3 nodes serve every row", u.all3.Round(time.Millisecond),
			float64(backupBytes)/1e6/u.all3.Seconds(), ratio(u.all3, u.cpSync))
	}
	fmt.Printf("%-44s %10s %8.0f %10s\n", "/db/backup", backupTook.Round(time.Millisecond),
		float64(backupBytes)/1e6/backupTook.Seconds(), ratio(backupTook, fileCP))
	fmt.Printf("%-44s %d / %d MiB\n", "peak RSS (VmHWM): joiner / leader", n4.peakRSS>>20, leader.peakRSS>>20)
	fmt.Printf("%-44s %d polls (%.0f/s, -poll-pause %s), %d failures; %d writes on the leader, %d failed; joiner caught up %s after ready\n",
		"during the join", joinPolls, float64(joinPolls)/took.Seconds(), pollPause, len(joinBad), writes.ok, writes.failed, caughtUp.Round(time.Millisecond))
	if noAnswer > 0 {
		problems = append(problems, fmt.Sprintf("%d polls got no answer", noAnswer))
	}
	for _, p := range problems {
		fmt.Println("FAILED:", p)
	}
	if len(problems) > 0 {
		return fmt.Errorf("%d checks failed", len(problems))
	}
	return nil
}

// roles finds the leader and a follower from /status.
func roles(nodes []*node) (leader, follower *node, err error) {
	for _, n := range nodes {
		_, body, err := get(n, "/status")
		if err != nil {
			return nil, nil, err
		}
		var doc struct {
			Store struct {
				Raft struct {
					State string `json:"state"`
				} `json:"raft"`
			} `json:"store"`
		}
		if err := json.Unmarshal([]byte(body), &doc); err != nil {
			return nil, nil, err
		}
		if doc.Store.Raft.State == "Leader" {
			leader = n
		} else if follower == nil {
			follower = n
		}
	}
	if leader == nil || follower == nil {
		return nil, nil, errors.New("no leader or no follower")
	}
	return leader, follower, nil
}

var sigName = map[syscall.Signal]string{syscall.SIGTERM: "SIGTERM", syscall.SIGKILL: "SIGKILL"}

// profileJoin saves 6 s CPU profiles of the leader and the joiner from
// the joiner's start (SOAK_PPROF_DIR): where a join's time goes.
func profileJoin(dir string, leader, joiner *node) {
	for _, n := range []*node{leader, joiner} {
		go func() {
			var resp *http.Response
			var err error
			for range 50 { // the joiner's HTTP port opens a few ms after launch
				if resp, err = http.Get(n.url("/debug/pprof/profile?seconds=6")); err == nil {
					break
				}
				time.Sleep(10 * time.Millisecond)
			}
			if err != nil {
				fmt.Println("profile:", n.id, err)
				return
			}
			defer resp.Body.Close()
			f, err := os.Create(filepath.Join(dir, n.id+".pprof"))
			if err != nil {
				fmt.Println("profile:", err)
				return
			}
			defer f.Close()
			if _, err := io.Copy(f, resp.Body); err != nil {
				fmt.Println("profile:", n.id, err)
			}
		}()
	}
}
