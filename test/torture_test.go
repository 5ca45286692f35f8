package test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/skiffdb/skiff/test/testport"
)

// The phase torture test (issue 5; DESIGN.md "Lifecycle states"; API.md
// 2.1-2.3 and 3.1, rqlite#1698): nodes of a real cluster, built with
// failpoints, are held inside each phase of their life while every endpoint
// of API.md 1.1 is hammered on them, and /nodes on their peers.
const (
	// hammerFor is how long each phase is hammered.
	hammerFor = 2 * time.Second
	// hammerWorkers send requests concurrently.
	hammerWorkers = 6
	// hammerDeadline is every hammer request's deadline: an answer later
	// than this counts as no answer. It exceeds /nodes' 5s peer timeout
	// (a dead peer makes /nodes wait that long, by design).
	hammerDeadline = 10 * time.Second
)

// target is one request of the hammer.
type target struct {
	method, path, ctype, body string
	// kind says how the answer is judged.
	kind reqKind
}

type reqKind int

const (
	// statusReq: /status, always 200 JSON carrying the phase.
	statusReq reqKind = iota
	// readyzReq: 200 only when ready, else 503 naming the phase.
	readyzReq
	// infoReq: /nodes, /leader, /debug/*, /db/sql, /, OPTIONS: answered
	// in every phase, never with a server error other than 503.
	infoReq
	// dataReq: served when ready, the documented 503 otherwise.
	dataReq
	// metricsReq: /metrics, always 200 with the phase gauge at 1 for the
	// phase the node is in (gateway/metrics).
	metricsReq
)

// hammerTargets is every route of API.md 1.1, with bodies that change
// nothing a test checks (the row writes go to a table of their own).
func hammerTargets() []target {
	return []target{
		{method: "GET", path: "/status", kind: statusReq},
		{method: "GET", path: "/status?pretty&key=store", kind: infoReq},
		{method: "GET", path: "/readyz", kind: readyzReq},
		{method: "GET", path: "/nodes?timeout=5s", kind: infoReq},
		{method: "GET", path: "/nodes?ver=2&nonvoters&timeout=5s", kind: infoReq},
		{method: "GET", path: "/leader", kind: infoReq},
		{method: "GET", path: "/debug/vars", kind: infoReq},
		{method: "GET", path: "/metrics", kind: metricsReq},
		{method: "GET", path: "/debug/pprof/cmdline", kind: infoReq},
		{method: "GET", path: "/", kind: infoReq},
		{method: "OPTIONS", path: "/db/query", kind: infoReq},
		{method: "GET", path: "/db/sql?q=SELECT+RANDOM()", kind: infoReq},
		{method: "GET", path: "/db/query?q=SELECT+COUNT(*)+FROM+t&timeout=3s", kind: dataReq},
		{method: "GET", path: "/db/query?q=SELECT+1&level=linearizable&timeout=3s", kind: dataReq},
		{method: "POST", path: "/db/execute?timeout=3s", ctype: "application/json", body: `["INSERT INTO hammer(v) VALUES(1)"]`, kind: dataReq},
		{method: "POST", path: "/db/request?timeout=3s", ctype: "application/json", body: `["SELECT COUNT(*) FROM t"]`, kind: dataReq},
		{method: "POST", path: "/db/execute?queue", ctype: "application/json", body: `["INSERT INTO hammer(v) VALUES(2)"]`, kind: dataReq},
		{method: "GET", path: "/db/backup?fmt=sql&tables=hammer", kind: dataReq},
		{method: "POST", path: "/db/load", ctype: "text/plain", body: "CREATE TABLE IF NOT EXISTS hammer(v INTEGER);", kind: dataReq},
		{method: "POST", path: "/snapshot", kind: dataReq},
		{method: "POST", path: "/reap", kind: dataReq},
		{method: "POST", path: "/boot", ctype: "application/octet-stream", body: "not a database", kind: dataReq},
		{method: "DELETE", path: "/remove", ctype: "application/json", body: `{"id":"no-such-node"}`, kind: dataReq},
	}
}

// hammerReport is what a hammer saw.
type hammerReport struct {
	mu       sync.Mutex
	sent     atomic.Int64
	byStatus map[string]map[int]int // path -> status -> count
	problems []string
}

func (h *hammerReport) problem(f string, a ...any) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.problems) < 20 {
		h.problems = append(h.problems, fmt.Sprintf(f, a...))
	}
}

func (h *hammerReport) count(what string, status int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.byStatus[what] == nil {
		h.byStatus[what] = map[int]int{}
	}
	h.byStatus[what][status]++
}

func (h *hammerReport) summary() string {
	var keys []string
	for k := range h.byStatus {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "\n  %-55s %v", k, h.byStatus[k])
	}
	return b.String()
}

// hammer sends every request of hammerTargets to m, and /nodes to each of
// peers, from hammerWorkers goroutines for hammerFor, and checks each
// answer against phase. peers must show m (node ID id) reachable, not
// leader, in phase (unless peerView is false: m is not a member they know).
func hammer(t *testing.T, m *member, phase string, peers []*member, peerView bool) {
	t.Helper()
	rep := &hammerReport{byStatus: map[string]map[int]int{}}
	targets := hammerTargets()
	client := newClient(hammerDeadline, false)
	defer client.CloseIdleConnections()
	stop := time.Now().Add(hammerFor)
	var wg sync.WaitGroup
	for w := range hammerWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; time.Now().Before(stop); i++ {
				if len(peers) > 0 && i%4 == 3 {
					p := peers[i%len(peers)]
					checkPeerView(rep, client, p, m.id, phase, peerView)
					continue
				}
				tg := targets[i%len(targets)]
				checkAnswer(rep, client, m, tg, phase)
			}
		}()
	}
	wg.Wait()
	if m.proc.exited() {
		t.Errorf("%s in %s: the process exited: %v", m.id, phase, m.proc.waitErr)
	}
	t.Logf("%s held in %s: %d requests, answers by path and status:%s", m.id, phase, rep.sent.Load(), rep.summary())
	if len(rep.problems) > 0 {
		m.dumpLogs()
		t.Fatalf("%s in %s: %d+ bad answers:\n%s", m.id, phase, len(rep.problems), strings.Join(rep.problems, "\n"))
	}
}

// checkAnswer sends tg to m and judges the answer for phase.
func checkAnswer(rep *hammerReport, c *http.Client, m *member, tg target, phase string) {
	rep.sent.Add(1)
	var body io.Reader
	if tg.body != "" {
		body = strings.NewReader(tg.body)
	}
	began := time.Now()
	r, err := m.do(c, tg.method, tg.path, tg.ctype, body)
	what := tg.method + " " + tg.path
	if err != nil {
		rep.problem("%s: no answer after %s: %v", what, time.Since(began).Round(time.Millisecond), err)
		return
	}
	rep.count(what, r.status)
	ready := phase == "ready"
	switch {
	case r.status >= 500 && r.status != http.StatusServiceUnavailable:
		rep.problem("%s: %s (a server error)", what, r)
		return
	case tg.kind == statusReq:
		st, err := parseStatus(r.body)
		if r.status != http.StatusOK || err != nil {
			rep.problem("%s: %s: %v", what, r, err)
		} else if st.state != phase {
			rep.problem("%s: lifecycle.state %q, want %q", what, st.state, phase)
		}
	case tg.kind == metricsReq:
		want := `skiff_lifecycle_phase{phase="` + phase + `"} 1`
		if r.status != http.StatusOK || !strings.Contains(string(r.body), want) {
			rep.problem("%s: %d, want 200 with %s", what, r.status, want)
		}
	case tg.kind == readyzReq:
		if ready && r.status != http.StatusOK {
			rep.problem("%s: %s on a ready node", what, r)
		}
		if !ready && (r.status != http.StatusServiceUnavailable || !strings.Contains(string(r.body), "("+phase+")")) {
			rep.problem("%s: %s, want 503 naming %q (API.md 2.3)", what, r, phase)
		}
	case tg.kind == dataReq && !ready:
		if r.status == http.StatusOK && phase == "degraded" && (strings.Contains(tg.path, "/db/backup") || tg.path == "/reap") {
			return // local reads and WAL checkpoints, which degraded serves (DESIGN.md)
		}
		if r.status != http.StatusServiceUnavailable {
			rep.problem("%s: %s, want the documented 503 in %s", what, r, phase)
			return
		}
		// Phase refusals are JSON naming the phase (DESIGN.md); degraded
		// answers rqlite's own "leader not found".
		if phase != "degraded" {
			var doc struct {
				Error string `json:"error"`
			}
			if json.Unmarshal(r.body, &doc) != nil || !strings.Contains(doc.Error, strings.TrimSuffix(phase, "ing")) {
				rep.problem("%s: %s, want a JSON error naming %s", what, r, phase)
			}
		}
	}
}

// checkPeerView asks peer for /nodes and checks what it says of node id.
func checkPeerView(rep *hammerReport, c *http.Client, peer *member, id, phase string, inView bool) {
	rep.sent.Add(1)
	path := "/nodes?nonvoters&timeout=5s"
	began := time.Now()
	r, err := peer.do(c, http.MethodGet, path, "", nil)
	what := "peer " + peer.id + " GET " + path
	if err != nil {
		rep.problem("%s: no answer after %s: %v", what, time.Since(began).Round(time.Millisecond), err)
		return
	}
	rep.count(what, r.status)
	var docs map[string]nodeDoc
	if r.status != http.StatusOK || json.Unmarshal(r.body, &docs) != nil {
		rep.problem("%s: %s, want 200 JSON", what, r)
		return
	}
	d, ok := docs[id]
	if !inView {
		return
	}
	switch {
	case !ok:
		rep.problem("%s: %s missing: %s", what, id, r.body)
	case !d.reachable() || d.State != phase:
		rep.problem("%s: %s reachable=%v state %q, want reachable in %q (DESIGN.md)", what, id, d.reachable(), d.State, phase)
	case phase != "ready" && d.leader():
		rep.problem("%s: %s in %s shown as leader", what, id, phase)
	}
}

// setFailpoint sets a failpoint on m (sm/failpoint, PUT /debug/failpoints).
func setFailpoint(t *testing.T, m *member, name, action string) {
	t.Helper()
	r, err := m.do(m.client, http.MethodPut, "/debug/failpoints/"+name, "text/plain", strings.NewReader(action))
	if err != nil || r.status != http.StatusOK {
		t.Fatalf("%s: failpoint %s=%s: %v %v", m.id, name, action, r, err)
	}
}

// failpointHits is how often m reached the failpoint name.
func failpointHits(t *testing.T, m *member, name string) uint64 {
	t.Helper()
	r := m.get("/debug/failpoints")
	var list []struct {
		Name string `json:"name"`
		Hits uint64 `json:"hits"`
	}
	if r.status != http.StatusOK || json.Unmarshal(r.body, &list) != nil {
		t.Fatalf("%s: /debug/failpoints: %s", m.id, r)
	}
	for _, fp := range list {
		if fp.Name == name {
			return fp.Hits
		}
	}
	return 0
}

// waitPhase polls m's /status until lifecycle.state is phase and cond (if
// any) holds.
func waitPhase(t *testing.T, m *member, phase string, cond func(doc statusDoc) bool) statusDoc {
	t.Helper()
	return waitStatus(t, m, "phase "+phase, func(d statusDoc) bool {
		return d.Lifecycle.State == phase && (cond == nil || cond(d))
	})
}

// statusDoc is the lifecycle section of /status (Skiff's own, DESIGN.md).
type statusDoc struct {
	Lifecycle struct {
		State    string `json:"state"`
		Progress struct {
			DBBytes       int64   `json:"db_bytes"`
			AppliedIndex  uint64  `json:"applied_index"`
			TargetIndex   uint64  `json:"target_index"`
			Step          string  `json:"step"`
			EntriesPerS   float64 `json:"entries_per_s"`
			ETA           float64 `json:"eta_s"`
			SnapshotBytes int64   `json:"snapshot_bytes"`
			SnapshotTotal int64   `json:"snapshot_total_bytes"`
			SentBytes     int64   `json:"sent_bytes"`
			SentTotal     int64   `json:"sent_total_bytes"`
			ReceivedBytes int64   `json:"received_bytes"`
			LeaderTotal   int64   `json:"leader_sent_total_bytes"`
		} `json:"progress"`
	} `json:"lifecycle"`
}

// TestTorturePhases holds nodes of a 3-node cluster in every phase of
// DESIGN.md's table (starting, opening, joining, recovering while replaying
// the log and while installing a snapshot, ready, degraded, stopping) with
// failpoints, and hammers every endpoint of API.md 1.1 on them and /nodes
// on their peers: every request must be answered within its deadline,
// /status always 200 JSON with the phase, /readyz 503 naming the phase,
// data endpoints the documented 503 until ready; no process may die. It
// also shuts nodes down while they are held, which must end promptly.
func TestTorturePhases(t *testing.T) {
	c := newClusterWith(t, 3, func(m *member) { m.failpoints = new(string) })
	leader := c.leader
	fs := others(c.ms, leader)
	f, other := fs[0], fs[1]
	r := leader.execute(`["CREATE TABLE t (id INTEGER NOT NULL PRIMARY KEY, v TEXT)", "CREATE TABLE hammer (v INTEGER)"]`)
	if r.status != http.StatusOK || strings.Contains(string(r.body), "error") {
		t.Fatalf("create tables: %s", r)
	}
	var rs rows
	for i := range 20 {
		rs.insert(t, leader, fmt.Sprintf("r%d", i))
	}
	waitRows(t, f, rs)

	t.Run("ready", func(t *testing.T) { hammer(t, f, "ready", []*member{leader, other}, true) })

	t.Run("stopping", func(t *testing.T) {
		// Held in shutdown for a while, then exits 0 (SIGTERM's contract).
		setFailpoint(t, f, "bootstrap/shutdown", "sleep(4s)")
		if err := f.proc.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		waitPhase(t, f, "stopping", nil)
		hammer(t, f, "stopping", []*member{leader, other}, true)
		select {
		case <-f.proc.done:
		case <-time.After(stopTimeout):
			t.Fatalf("no exit within %s of SIGTERM", stopTimeout)
		}
		if code := f.proc.exitCode(); code != 0 {
			f.dumpLogs()
			t.Fatalf("exit status %d after SIGTERM", code)
		}
	})

	t.Run("starting", func(t *testing.T) {
		spec := "bootstrap/start=pause"
		f.failpoints = &spec
		p := f.launch()
		if err := waitPID(f, p, "starting"); err != nil {
			t.Fatal(err)
		}
		hammer(t, f, "starting", nil, false)
		setFailpoint(t, f, "bootstrap/start", "off")
		f.waitReady(clusterTimeout)
	})

	t.Run("opening", func(t *testing.T) {
		f.sigterm()
		spec := "sm/open=pause"
		f.failpoints = &spec
		f.start()
		waitPhase(t, f, "opening", nil)
		hammer(t, f, "opening", []*member{leader, other}, false)
		// Shut down while held: bounded, clean (issue 5 "nothing hangs").
		stopHeldAndRestart(t, f, "while opening")
	})

	t.Run("recovering-log-replay", func(t *testing.T) {
		f.sigterm()
		for i := range 200 {
			rs.insert(t, leader, fmt.Sprintf("while-down-%d", i))
		}
		spec := "sm/apply=pause"
		f.failpoints = &spec
		f.start()
		// Held before its first Update: the log tail is there to replay,
		// and the leader's index is known as the target.
		doc := waitPhase(t, f, "recovering", func(d statusDoc) bool {
			p := d.Lifecycle.Progress
			return p.Step == "replaying_log" && p.TargetIndex > p.AppliedIndex
		})
		t.Logf("recovering: applied %d of target %d", doc.Lifecycle.Progress.AppliedIndex, doc.Lifecycle.Progress.TargetIndex)
		hammer(t, f, "recovering", []*member{leader, other}, true)
		// Then a slow replay instead of none: entries/s and an ETA show.
		setFailpoint(t, f, "sm/apply", "sleep(30ms)")
		f.waitReady(clusterTimeout)
		waitRows(t, f, rs)
	})

	t.Run("stuck-apply", func(t *testing.T) {
		// A ready node whose state machine stops applying (a stuck disk):
		// requests through it end at their deadline with a 503, never hang;
		// its status endpoints still answer at once; SIGTERM still ends it.
		setFailpoint(t, f, "sm/apply", "pause")
		for _, tc := range []struct{ method, path, body string }{
			{"POST", "/db/execute?timeout=1s", `["INSERT INTO hammer(v) VALUES(3)"]`},
			{"GET", "/db/query?q=SELECT+1&level=linearizable&timeout=1s", ""},
			{"POST", "/db/query?level=strong&timeout=1s", `["SELECT 1"]`},
		} {
			began := time.Now()
			r, err := f.do(f.client, tc.method, tc.path, "application/json", strings.NewReader(tc.body))
			took := time.Since(began)
			if err != nil || r.status != http.StatusServiceUnavailable {
				t.Fatalf("%s %s with apply stuck: %v %v after %s, want 503", tc.method, tc.path, r, err, took)
			}
			t.Logf("%s %s with apply stuck: %d after %s", tc.method, tc.path, r.status, took.Round(time.Millisecond))
		}
		if st, err := fetchStatus(f.client, f.baseURL()); err != nil || st.state != "ready" {
			t.Fatalf("/status with apply stuck: %+v %v", st, err)
		}
		stopHeldAndRestart(t, f, "with apply stuck")
		waitRows(t, f, rs)
	})

	t.Run("recovering-snapshot-install", func(t *testing.T) {
		// A joiner of a compacted cluster receives the database whole.
		r := leader.post("/snapshot?trailing_logs=0", "")
		if r.status != http.StatusOK && r.status != http.StatusNoContent {
			t.Fatalf("/snapshot: %s", r)
		}
		// Held in the install from Dragonboat's file: the receive tap,
		// which would write during the stream, is off.
		spec := "sm/snapshot-install=pause;sm/receive-tap=error"
		j := c.add("n4", "-join", leader.raftAddr)
		j.failpoints = &spec
		j.start()
		waitPhase(t, j, "recovering", func(d statusDoc) bool { return d.Lifecycle.Progress.Step == "installing_snapshot" })
		if failpointHits(t, j, "sm/snapshot-install") == 0 {
			t.Fatal("held in installing_snapshot without reaching the failpoint")
		}
		// Peers learn of the new member asynchronously (a membership read
		// through Raft on each); wait until each lists it.
		for _, p := range []*member{leader, f, other} {
			waitListed(t, p, j.id)
		}
		hammer(t, j, "recovering", []*member{leader, f, other}, true)
		// Shut down in the middle of the install: clean and prompt; the
		// next start installs the received snapshot again.
		stopHeldAndRestart(t, j, "while installing a snapshot")
		waitRows(t, j, rs)
		// It stays, as a fourth voter, for the rest of the test.
		c.waitMembers(c.ms, c.ids(), nil)
	})

	t.Run("joining", func(t *testing.T) {
		// A join target that never answers: the node stays joining.
		dead := testport.Addr(t)
		j := c.add("n5", "-join", dead, "-join-attempts", "1000", "-join-interval", "200ms")
		empty := ""
		j.failpoints = &empty
		j.start()
		waitPhase(t, j, "joining", nil)
		hammer(t, j, "joining", nil, false)
		began := time.Now()
		j.sigterm()
		t.Logf("SIGTERM while joining: exited in %s", time.Since(began).Round(time.Millisecond))
		c.ms = c.ms[:len(c.ms)-1]
	})

	t.Run("degraded", func(t *testing.T) {
		// f alone of four voters: no quorum, so no leader.
		down := others(c.ms, f)
		var wg sync.WaitGroup
		for _, m := range down {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := m.stop(); err != nil {
					t.Errorf("%s: %v", m.id, err)
				}
			}()
		}
		wg.Wait()
		waitPhase(t, f, "degraded", nil)
		hammer(t, f, "degraded", nil, false)
		for _, m := range down {
			m.failpoints = new(string)
			m.launch()
		}
		for _, m := range c.ms {
			m.waitReady(clusterTimeout)
		}
		waitRows(t, f, rs)
	})
}

// waitPID waits until p answers /status in phase.
func waitPID(n *member, p *process, phase string) error {
	deadline := time.Now().Add(httpUpTimeout)
	c := newClient(2*time.Second, true)
	var last string
	for time.Now().Before(deadline) {
		if p.exited() {
			return fmt.Errorf("process exited: %v", p.waitErr)
		}
		if st, err := fetchStatus(c, n.baseURL()); err == nil && st.pid == p.cmd.Process.Pid {
			if st.state == phase {
				return nil
			}
			last = st.state
		}
		time.Sleep(10 * time.Millisecond)
	}
	return fmt.Errorf("pid %d not in %s within %s (last %q)", p.cmd.Process.Pid, phase, httpUpTimeout, last)
}

// waitListed polls peer's /nodes?nonvoters until it lists node id.
func waitListed(t *testing.T, peer *member, id string) {
	t.Helper()
	deadline := time.Now().Add(clusterTimeout)
	var last string
	for time.Now().Before(deadline) {
		r, err := peer.do(peer.client, http.MethodGet, "/nodes?nonvoters", "", nil)
		if err == nil && r.status == http.StatusOK {
			var docs map[string]nodeDoc
			if json.Unmarshal(r.body, &docs) == nil {
				if _, ok := docs[id]; ok {
					return
				}
			}
			last = string(r.body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s does not list %s within %s: %s", peer.id, id, clusterTimeout, last)
}

// stopHeldAndRestart stops m with SIGTERM while a failpoint holds it (the
// exit must be clean and within stopTimeout), then starts it again with no
// failpoint set and waits until it is ready.
func stopHeldAndRestart(t *testing.T, m *member, while string) {
	t.Helper()
	began := time.Now()
	m.sigterm()
	t.Logf("SIGTERM %s: exited in %s", while, time.Since(began).Round(time.Millisecond))
	empty := ""
	m.failpoints = &empty
	m.start()
	m.waitReady(clusterTimeout)
}
