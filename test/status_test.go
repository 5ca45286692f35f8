package test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/skiffdb/skiff/test/testport"
)

// Lifecycle states a single bootstrapping node may show, in DESIGN.md
// "Lifecycle states" order. joining (a node being added to a cluster) and
// degraded (a ready node that lost its leader) have no place in the life of
// a lone node, so they count as out of order.
var lifecycleRank = map[string]int{"starting": 0, "opening": 1, "recovering": 2, "ready": 3, "stopping": 4}

// The data paths polled; all must refuse with 503 JSON until ready.
const (
	selectOneBody = `["SELECT 1"]`
	selectOneJSON = `{"results":[{"columns":["1"],"types":["integer"],"values":[[1]]}]}`
)

// probe is one request of a poller and what came back.
type probe struct {
	path       string
	start, end time.Time
	err        error
	status     int
	ctype      string
	body       []byte     // not kept for /status, which is parsed at once
	doc        statusInfo // /status: the parsed document
	docErr     error      // /status: why the document is unusable
}

// poller sends requests in a loop, one at a time, so that its probes are in
// the order the server answered them.
type poller struct {
	name   string
	client *http.Client
	paths  []string
	pause  time.Duration
	probes []probe
}

func (pl *poller) run(n *node, stop <-chan struct{}, onReady func()) {
	for i := 0; ; i++ {
		select {
		case <-stop:
			return
		default:
		}
		path := pl.paths[i%len(pl.paths)]
		method, body := http.MethodGet, ""
		if strings.HasPrefix(path, "/db/execute") || strings.HasPrefix(path, "/db/request") {
			method, body = http.MethodPost, selectOneBody
		}
		p := probe{path: path, start: time.Now()}
		r, err := n.do(pl.client, method, path, "application/json", strings.NewReader(body))
		p.end = time.Now()
		p.err = err
		if err == nil {
			p.status, p.ctype, p.body = r.status, r.header.Get("Content-Type"), r.body
			if path == "/status" {
				p.body = nil
				if r.status == http.StatusOK {
					st, err := parseStatus(r.body)
					p.doc, p.docErr = st, err
					if st.state == "ready" {
						onReady()
					}
				}
			}
		}
		pl.probes = append(pl.probes, p)
		if pl.pause > 0 {
			time.Sleep(pl.pause)
		}
	}
}

// TestStatusFromFirstMillisecond hammers a node's status and data endpoints
// from before the process exists until after it has exited on SIGTERM
// (DESIGN.md "Lifecycle states", API.md 2.1-2.3, and rqlite#1698 in API.md
// 3.1: a node must answer, never crash or refuse, while it opens). Once the
// HTTP port has accepted one connection, nothing may be refused or reset
// until shutdown; /status is always 200 JSON with lifecycle.state; /readyz
// is 503 until ready and 200 after; data endpoints are 503 JSON or 200;
// states only move forward.
func TestStatusFromFirstMillisecond(t *testing.T) {
	n := newNode(t)
	// Twice: on a fresh data directory, then restarting on the data the
	// first run left (a restart opens an existing database and log).
	for round := 1; round <= 2; round++ {
		for attempt := 1; ; attempt++ {
			if clash := startupAndShutdownProbe(t, n, fmt.Sprintf("round %d", round)); !clash {
				break
			}
			if attempt == portAttempts {
				t.Fatalf("round %d: port clash on %d attempts", round, attempt)
			}
			t.Logf("round %d, attempt %d: port clash, retrying with other ports", round, attempt)
			n.httpAddr = testport.Addr(t)
			if round == 1 {
				// Nothing of value yet; the Raft address is part of the
				// stored identity, so start afresh.
				if err := os.RemoveAll(n.dataDir); err != nil {
					t.Fatal(err)
				}
				n.raftAddr = testport.Addr(t)
			}
		}
	}
}

// startupAndShutdownProbe runs the test on n; it returns true if the
// daemon could not bind its ports (nothing was checked then).
func startupAndShutdownProbe(t *testing.T, n *node, label string) (portClash bool) {
	const (
		afterReady = time.Second            // keep polling a ready node this long
		afterExit  = 300 * time.Millisecond // and a dead one this long
	)
	pollers := []*poller{
		// One poller alternates /status and /readyz so that the two can
		// be checked against each other in server order.
		{name: "status+readyz", paths: []string{"/status", "/readyz"}},
		{name: "nodes+leader", paths: []string{"/nodes", "/leader"}},
		{name: "data", paths: []string{"/db/query?q=SELECT+1", "/db/request", "/db/execute"}},
		{name: "readyz", paths: []string{"/readyz"}},
		// A connection per request as well: keep-alive connections can
		// hide a listener that refuses new ones. Paced, to stay far
		// from exhausting ephemeral ports.
		{name: "fresh-conn", paths: []string{"/status", "/readyz", "/nodes", "/leader", "/db/query?q=SELECT+1"},
			pause: 2 * time.Millisecond},
	}
	readyC := make(chan struct{})
	var readyOnce sync.Once
	onReady := func() { readyOnce.Do(func() { close(readyC) }) }
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, pl := range pollers {
		pl.client = newClient(5*time.Second, pl.name == "fresh-conn")
		wg.Add(1)
		go func() {
			defer wg.Done()
			pl.run(n, stop, onReady)
		}()
	}
	stopped := false
	stopPollers := func() {
		if !stopped {
			stopped = true
			close(stop)
			wg.Wait()
			for _, pl := range pollers {
				pl.client.CloseIdleConnections()
			}
		}
	}
	defer stopPollers()

	// The pollers are already knocking when the process starts.
	time.Sleep(20 * time.Millisecond)
	p := n.launch()
	select {
	case <-readyC:
	case <-p.done:
		stopPollers()
		if n.logContains(p.logPath, "address already in use") {
			return true
		}
		t.Fatalf("%s: process exited before ready: %v", label, p.waitErr)
	case <-time.After(readyTimeout):
		t.Fatalf("%s: not ready within %s", label, readyTimeout)
	}
	time.Sleep(afterReady)

	termAt := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("%s: SIGTERM: %v", label, err)
	}
	select {
	case <-p.done:
	case <-time.After(stopTimeout):
		t.Fatalf("%s: no exit within %s of SIGTERM", label, stopTimeout)
	}
	if code := p.exitCode(); code != 0 {
		t.Errorf("%s: exit status %d after SIGTERM, want 0 (%v)", label, code, p.waitErr)
	}
	t.Logf("%s: SIGTERM to exit: %s", label, p.exitAt.Sub(termAt))
	time.Sleep(afterExit)
	stopPollers()

	checkProbes(t, label, pollers, p.cmd.Process.Pid, termAt)
	return false
}

// checkProbes judges every probe against the rules of the test.
func checkProbes(t *testing.T, label string, pollers []*poller, pid int, termAt time.Time) {
	t.Helper()
	// The first answer proves the listener exists; from then on, until
	// SIGTERM, a refusal or reset is a bug.
	var firstAnswer time.Time
	total := 0
	for _, pl := range pollers {
		total += len(pl.probes)
		for _, p := range pl.probes {
			if p.err == nil && (firstAnswer.IsZero() || p.end.Before(firstAnswer)) {
				firstAnswer = p.end
			}
		}
	}
	if firstAnswer.IsZero() {
		t.Fatalf("%s: no request was ever answered", label)
	}
	// lastAnswerStart is when the last request that got an HTTP answer
	// was sent: a connection error before that moment came from a
	// listener that was still serving. firstRefusal is the first refused
	// connection after SIGTERM: the listener is closed from then on.
	var lastAnswerStart, firstRefusal time.Time
	for _, pl := range pollers {
		for _, p := range pl.probes {
			if p.err == nil && p.start.After(lastAnswerStart) {
				lastAnswerStart = p.start
			}
			if p.err != nil && !p.end.Before(termAt) && errors.Is(p.err, syscall.ECONNREFUSED) &&
				(firstRefusal.IsZero() || p.end.Before(firstRefusal)) {
				firstRefusal = p.end
			}
		}
	}

	errorsShown := 0
	fail := func(pl *poller, p probe, format string, args ...any) {
		t.Helper()
		// One bad probe tends to come with many; show the first few.
		if errorsShown++; errorsShown <= 15 {
			t.Errorf("%s [%s] %s at +%s: %s", label, pl.name, p.path, p.start.Sub(firstAnswer).Round(time.Microsecond), fmt.Sprintf(format, args...))
		}
	}

	var statesSeen []string
	// What the shutdown looked like, for the log.
	var answeredAfterTerm, refusedAfterTerm, otherAfterTerm int
	stoppingSeen := false
	for _, pl := range pollers {
		for _, p := range pl.probes {
			switch {
			case p.end.Before(termAt):
			case p.err == nil:
				answeredAfterTerm++
				stoppingSeen = stoppingSeen || p.doc.state == "stopping"
			case errors.Is(p.err, syscall.ECONNREFUSED):
				refusedAfterTerm++
			default:
				otherAfterTerm++
				// Those that break the rules are reported below.
				if otherAfterTerm <= 3 && !p.end.Before(lastAnswerStart) {
					t.Logf("%s [%s] %s sent %s after SIGTERM, failed after %s: %v (accepted: no later request was answered)",
						label, pl.name, p.path, p.start.Sub(termAt).Round(time.Microsecond), p.end.Sub(p.start).Round(time.Microsecond), p.err)
				}
			}
		}
	}
	for _, pl := range pollers {
		var (
			lastRank  = -1
			readyzOK  bool // phase 1: /readyz has answered 200
			statusOK  bool // phase 1: /status has said ready
			dataOK    = map[string]bool{}
			readyz503 bool // phase 2: /readyz has answered 503
			lastState string
		)
		for _, p := range pl.probes {
			shutdown := !p.end.Before(termAt) // answered or failed after SIGTERM was sent
			if p.err != nil {
				var nerr net.Error
				switch {
				case errors.As(p.err, &nerr) && nerr.Timeout():
					fail(pl, p, "timed out: %v", p.err)
				case strings.Contains(p.err.Error(), "reading the body"):
					fail(pl, p, "connection broke mid-response: %v", p.err)
				case p.start.Before(firstAnswer) && errors.Is(p.err, syscall.ECONNREFUSED):
					// Before the port was bound.
				case p.start.Before(firstAnswer):
					fail(pl, p, "before the port first answered: %v, want a clean refusal", p.err)
				case !shutdown:
					fail(pl, p, "transport error after the port accepted connections: %v", p.err)
				case errors.Is(p.err, syscall.ECONNREFUSED):
					// The listener is closed: a clean refusal.
				case p.end.Before(lastAnswerStart):
					fail(pl, p, "connection error while the server was still answering requests sent later: %v", p.err)
				}
				continue
			}
			// A new connection answered after one was refused would
			// mean the listener came back. (Keep-alive connections are
			// not held to this: Go's server may still answer on one for
			// a moment after closing its listener.)
			if pl.name == "fresh-conn" && !firstRefusal.IsZero() && p.start.After(firstRefusal) {
				fail(pl, p, "answered (%d) after the listener had refused a connection", p.status)
			}
			if p.status != http.StatusOK && p.status != http.StatusServiceUnavailable {
				fail(pl, p, "status %d %q, want 200 or 503", p.status, p.body)
				continue
			}
			switch path := p.path; {
			case path == "/status":
				if p.status != http.StatusOK {
					fail(pl, p, "status %d, want 200 whenever the process lives", p.status)
					continue
				}
				if p.docErr != nil {
					fail(pl, p, "%v", p.docErr)
					continue
				}
				if p.doc.pid != pid {
					fail(pl, p, "answered by pid %d, not by the daemon under test (%d)", p.doc.pid, pid)
				}
				// store.ready and the rest of store follow the same
				// published state (API.md 2.1).
				if p.doc.ready != (p.doc.state == "ready") {
					fail(pl, p, "store.ready %v with lifecycle.state %q", p.doc.ready, p.doc.state)
				}
				if p.doc.state == "ready" && (p.doc.nodeID != "1" || p.doc.leaderID != "1" || p.doc.raftState != "Leader") {
					fail(pl, p, "ready, but store.node_id %q, store.leader.node_id %q, store.raft.state %q; want 1, 1, Leader",
						p.doc.nodeID, p.doc.leaderID, p.doc.raftState)
				}
				rank, known := lifecycleRank[p.doc.state]
				if !known {
					fail(pl, p, "lifecycle.state %q is not a state a lone node passes through", p.doc.state)
					continue
				}
				if rank < lastRank {
					fail(pl, p, "lifecycle.state went back from %q to %q", lastState, p.doc.state)
				}
				if shutdown && rank < lifecycleRank["ready"] {
					fail(pl, p, "lifecycle.state %q during shutdown of a ready node", p.doc.state)
				}
				if !shutdown && readyzOK && p.doc.state != "ready" {
					fail(pl, p, "lifecycle.state %q after /readyz said 200", p.doc.state)
				}
				if pl.name == "status+readyz" && p.doc.state != lastState {
					statesSeen = append(statesSeen, p.doc.state)
				}
				lastRank, lastState = max(lastRank, rank), p.doc.state
				if p.doc.state == "ready" {
					statusOK = true
				}
			case path == "/readyz":
				switch {
				case p.status == http.StatusOK && string(p.body) != readyBody:
					fail(pl, p, "200 with body %q, want %q (API.md 2.3)", p.body, readyBody)
				case p.status == http.StatusServiceUnavailable && !strings.HasPrefix(string(p.body), "[+]node ok"):
					fail(pl, p, "503 with body %q, want it to start with [+]node ok (API.md 2.3)", p.body)
				case !shutdown && p.status == http.StatusOK:
					readyzOK = true
				case !shutdown && (readyzOK || statusOK):
					// statusOK: in the status+readyz poller, this
					// /readyz was sent after /status said ready.
					fail(pl, p, "503 %q after the node was ready", p.body)
				case shutdown && p.status == http.StatusOK && readyz503:
					fail(pl, p, "200 again after a 503 during shutdown")
				case shutdown && p.status == http.StatusServiceUnavailable:
					readyz503 = true
				}
			case path == "/nodes":
				if p.status == http.StatusOK && !json.Valid(p.body) {
					fail(pl, p, "200 with invalid JSON %q", p.body)
				}
			case path == "/leader":
				if p.status == http.StatusOK && !json.Valid(p.body) {
					fail(pl, p, "200 with invalid JSON %q", p.body)
				}
			default: // data endpoints
				if p.status == http.StatusServiceUnavailable {
					if msg, ok := phaseRefusal(p.body); !ok || !strings.HasPrefix(p.ctype, "application/json") {
						fail(pl, p, "503 %q (%s), want JSON {\"error\":\"node is ...\"} (DESIGN.md)", p.body, p.ctype)
					} else if !shutdown && dataOK[path] {
						fail(pl, p, "refused (%q) after it had been served", msg)
					}
					continue
				}
				dataOK[path] = true
				if !strings.HasPrefix(path, "/db/execute") && string(p.body) != selectOneJSON {
					fail(pl, p, "200 with body %q, want %s", p.body, selectOneJSON)
				}
				if strings.HasPrefix(path, "/db/execute") && !oneResultNoError(p.body) {
					fail(pl, p, "200 with body %q, want one result without error", p.body)
				}
			}
		}
	}
	if errorsShown > 15 {
		t.Errorf("%s: ... and %d more bad probes", label, errorsShown-15)
	}
	t.Logf("%s: %d probes; lifecycle states in order: %v", label, total, statesSeen)
	t.Logf("%s: after SIGTERM: %d answered (stopping seen: %v), %d refused, %d other connection errors",
		label, answeredAfterTerm, stoppingSeen, refusedAfterTerm, otherAfterTerm)
	if len(statesSeen) == 0 || !contains(statesSeen, "ready") {
		t.Errorf("%s: the /status poller never saw the node ready: %v", label, statesSeen)
	}
}

// phaseRefusal reports whether body is exactly {"error":"node is ..."}.
func phaseRefusal(body []byte) (string, bool) {
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil || len(m) != 1 {
		return "", false
	}
	msg, ok := m["error"].(string)
	return msg, ok && strings.HasPrefix(msg, "node is ")
}

// oneResultNoError reports whether body is {"results":[{...}]} with no
// error at either level.
func oneResultNoError(body []byte) bool {
	var resp struct {
		Results []map[string]any `json:"results"`
		Error   string           `json:"error"`
	}
	if err := json.Unmarshal(body, &resp); err != nil {
		return false
	}
	return resp.Error == "" && len(resp.Results) == 1 && resp.Results[0]["error"] == nil
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}
