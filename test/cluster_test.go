package test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/skiffdb/skiff/test/testport"
)

// Multi-node tests: every test starts its own cluster of skiffd processes
// on loopback ports. Waits are polls with deadlines; the deadlines are
// generous because -race binaries share two cores here.
const (
	// clusterTimeout bounds the wait for a cluster to agree on its
	// membership and leader (joins, promotions, elections).
	clusterTimeout = 60 * time.Second
	// catchUpTimeout bounds the wait for a node to hold the rows the
	// cluster acknowledged.
	catchUpTimeout = 30 * time.Second
	// nodesAnswerBound is how long /nodes may take with a dead peer
	// (API.md 2.2: peers are asked in parallel, each within a timeout).
	nodesAnswerBound = 10 * time.Second
)

// member is one node of a test cluster, under its node ID.
type member struct {
	*node
	id string
}

// setFlags sets the daemon flags of the next start: the node ID and flags.
// The harness passes "-node-id 1" first; Go's flag package keeps the last
// value given, so the member's own ID wins.
func (m *member) setFlags(flags ...string) {
	m.args = append([]string{"-node-id", m.id}, flags...)
}

// apiURL is m's API URL as /nodes reports it: https:// when m serves
// HTTPS (the harness's tlsClient set).
func (m *member) apiURL() string { return m.baseURL() }

// cluster is the members of one test's cluster.
type cluster struct {
	t  *testing.T
	ms []*member
	// leader is the leader once newCluster returns.
	leader *member
}

// newCluster starts size nodes n1..n<size>: n1 bootstraps, the others
// join, alternately through n1's Raft address (rqlited v8+) and its API URL
// (v7), all at once. It returns once every node is ready and every node's
// /nodes shows all of them as reachable voters under one leader.
func newCluster(t *testing.T, size int) *cluster {
	t.Helper()
	return newClusterWith(t, size, nil)
}

// newClusterWith is newCluster with setup applied to each member before
// its first start.
func newClusterWith(t *testing.T, size int, setup func(*member)) *cluster {
	t.Helper()
	c := &cluster{t: t}
	// Registered before the members' own cleanups, so it runs after them:
	// those stop whatever still runs; this only reports the elapsed time.
	began := time.Now()
	t.Cleanup(func() { t.Logf("cluster test body and cleanup took %s", time.Since(began).Round(time.Millisecond)) })
	n1 := c.add("n1")
	if setup != nil {
		setup(n1)
	}
	n1.start()
	n1.waitReady(readyTimeout)
	for i := 2; i <= size; i++ {
		via := n1.raftAddr
		if i%2 == 1 {
			via = n1.apiURL()
		}
		c.add(fmt.Sprintf("n%d", i), "-join", via)
	}
	if setup != nil {
		for _, m := range c.ms {
			setup(m)
		}
	}
	for _, m := range c.ms[1:] {
		m.start()
	}
	for _, m := range c.ms[1:] {
		m.waitReady(clusterTimeout)
	}
	c.leader = c.byID(c.waitMembers(c.ms, c.ids(), nil))
	// Stop every member at once at the end (cleanups run in reverse
	// order, so this runs before the members' own, which then find their
	// processes gone): one at a time, the last nodes would each shut down
	// without a quorum.
	t.Cleanup(c.stopAll)
	return c
}

// add prepares (does not start) a member with the given flags.
func (c *cluster) add(id string, flags ...string) *member {
	m := &member{node: newNode(c.t), id: id}
	m.setFlags(flags...)
	c.ms = append(c.ms, m)
	return m
}

func (c *cluster) ids() []string {
	var ids []string
	for _, m := range c.ms {
		ids = append(ids, m.id)
	}
	return ids
}

func (c *cluster) byID(id string) *member {
	for _, m := range c.ms {
		if m.id == id {
			return m
		}
	}
	c.t.Fatalf("no member %q", id)
	return nil
}

// others returns the members of ms other than the given ones.
func others(ms []*member, not ...*member) []*member {
	var out []*member
	for _, m := range ms {
		if !slices.Contains(not, m) {
			out = append(out, m)
		}
	}
	return out
}

// stopAll SIGTERMs every running member at once and requires each to exit
// with status 0 (the harness's rule for SIGTERM).
func (c *cluster) stopAll() {
	var wg sync.WaitGroup
	errs := make([]error, len(c.ms))
	for i, m := range c.ms {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = m.stop()
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			c.t.Errorf("%s: %v", c.ms[i].id, err)
			c.ms[i].dumpLogs()
		}
	}
}

func (c *cluster) dumpLogs() {
	for _, m := range c.ms {
		c.t.Logf("======== logs of %s ========", m.id)
		m.dumpLogs()
	}
}

// nodeDoc is one node of /nodes, /nodes?ver=2 and /leader (API.md 2.2).
// The booleans are pointers so that a missing key shows.
type nodeDoc struct {
	ID        string   `json:"id"`
	APIAddr   string   `json:"api_addr"`
	Addr      string   `json:"addr"`
	Voter     *bool    `json:"voter"`
	Leader    *bool    `json:"leader"`
	Reachable *bool    `json:"reachable"`
	Version   *string  `json:"version"`
	Time      *float64 `json:"time"`
	TimeS     string   `json:"time_s"`
	State     string   `json:"state"`
	Error     string   `json:"error"`
}

func (d nodeDoc) voter() bool     { return d.Voter != nil && *d.Voter }
func (d nodeDoc) leader() bool    { return d.Leader != nil && *d.Leader }
func (d nodeDoc) reachable() bool { return d.Reachable != nil && *d.Reachable }

// wellFormed checks the keys every node object has (API.md 2.2).
func (d nodeDoc) wellFormed() error {
	if d.ID == "" || d.Addr == "" || d.Voter == nil || d.Leader == nil || d.Reachable == nil || d.Version == nil {
		return fmt.Errorf("node object lacks id, addr, voter, leader, reachable or version: %+v", d)
	}
	if d.reachable() && (d.Time == nil || d.TimeS == "" || !(strings.HasPrefix(d.APIAddr, "http://") || strings.HasPrefix(d.APIAddr, "https://"))) {
		return fmt.Errorf("reachable node object lacks time, time_s or an http(s):// api_addr: %+v", d)
	}
	if !d.reachable() && d.Error == "" {
		return fmt.Errorf("unreachable node object has no error: %+v", d)
	}
	return nil
}

// fetchNodes GETs path (a /nodes variant) and decodes it: {"nodes":[...]}
// for ver=2, else the legacy map keyed by node ID, which is checked against
// the objects' own ids. It never fails the test (for polls).
func fetchNodes(n *node, path string) ([]nodeDoc, response, error) {
	r, err := n.do(n.client, http.MethodGet, path, "", nil)
	if err != nil {
		return nil, r, err
	}
	if r.status != http.StatusOK {
		return nil, r, fmt.Errorf("GET %s: %s", path, r)
	}
	var docs []nodeDoc
	if strings.Contains(path, "ver=2") {
		var doc struct {
			Nodes *[]nodeDoc `json:"nodes"`
		}
		if err := json.Unmarshal(r.body, &doc); err != nil || doc.Nodes == nil {
			return nil, r, fmt.Errorf("GET %s: not {\"nodes\":[...]}: %v: %s", path, err, r.body)
		}
		docs = *doc.Nodes
		if !sort.SliceIsSorted(docs, func(i, j int) bool { return docs[i].ID < docs[j].ID }) {
			return nil, r, fmt.Errorf("GET %s: nodes not sorted by id (API.md 2.2): %s", path, r.body)
		}
	} else {
		var legacy map[string]nodeDoc
		if err := json.Unmarshal(r.body, &legacy); err != nil {
			return nil, r, fmt.Errorf("GET %s: not a map of node objects: %v: %s", path, err, r.body)
		}
		for k, d := range legacy {
			if k != d.ID {
				return nil, r, fmt.Errorf("GET %s: key %q holds node %q: %s", path, k, d.ID, r.body)
			}
			docs = append(docs, d)
		}
		sort.Slice(docs, func(i, j int) bool { return docs[i].ID < docs[j].ID })
	}
	for _, d := range docs {
		if err := d.wellFormed(); err != nil {
			return nil, r, fmt.Errorf("GET %s: %v", path, err)
		}
	}
	return docs, r, nil
}

// settled reports why docs do not (yet) show exactly the given voters and
// non-voters, all reachable, with the right addresses, under exactly one
// leader; it returns that leader's ID.
func (c *cluster) settled(docs []nodeDoc, voters, nonvoters []string) (string, error) {
	want := append(slices.Clone(voters), nonvoters...)
	sort.Strings(want)
	var got []string
	leaders := []string{}
	for _, d := range docs {
		got = append(got, d.ID)
		if d.leader() {
			leaders = append(leaders, d.ID)
		}
	}
	if !slices.Equal(got, want) {
		return "", fmt.Errorf("nodes %v, want %v", got, want)
	}
	for _, d := range docs {
		m := c.byID(d.ID)
		switch {
		case !d.reachable():
			return "", fmt.Errorf("%s unreachable: %s", d.ID, d.Error)
		case d.voter() != slices.Contains(voters, d.ID):
			return "", fmt.Errorf("%s voter=%v", d.ID, d.voter())
		case d.Addr != m.raftAddr || d.APIAddr != m.apiURL():
			return "", fmt.Errorf("%s has addr %q api_addr %q, want %q and %q", d.ID, d.Addr, d.APIAddr, m.raftAddr, m.apiURL())
		}
	}
	if len(leaders) != 1 {
		return "", fmt.Errorf("leaders %v, want exactly one", leaders)
	}
	if !slices.Contains(voters, leaders[0]) {
		return "", fmt.Errorf("leader %s is not a voter", leaders[0])
	}
	return leaders[0], nil
}

// waitMembers polls /nodes?ver=2&nonvoters on each of ms until all of them
// show exactly voters and nonvoters, all reachable, under one and the same
// leader, whose ID it returns.
func (c *cluster) waitMembers(ms []*member, voters, nonvoters []string) string {
	c.t.Helper()
	began := time.Now()
	deadline := began.Add(clusterTimeout)
	last := map[string]string{}
	for {
		leaders := map[string]bool{}
		ok := true
		for _, m := range ms {
			docs, r, err := fetchNodes(m.node, "/nodes?ver=2&nonvoters")
			var leader string
			if err == nil {
				leader, err = c.settled(docs, voters, nonvoters)
			}
			if err != nil {
				last[m.id] = fmt.Sprintf("%v (body %s)", err, r.body)
				ok = false
				break
			}
			leaders[leader] = true
		}
		if ok && len(leaders) == 1 {
			for l := range leaders {
				c.t.Logf("membership settled in %s: voters %v, non-voters %v, leader %s",
					time.Since(began).Round(time.Millisecond), voters, nonvoters, l)
				return l
			}
		}
		if ok {
			last["*"] = fmt.Sprintf("nodes disagree on the leader: %v", leaders)
		}
		if time.Now().After(deadline) {
			c.dumpLogs()
			c.t.Fatalf("membership did not settle on voters %v, non-voters %v within %s; last views: %v",
				voters, nonvoters, clusterTimeout, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// The table every cluster test writes: t(id INTEGER PRIMARY KEY, v TEXT).
const createT = `["CREATE TABLE t (id INTEGER NOT NULL PRIMARY KEY, v TEXT)"]`

// rows is what a test has written to t and had acknowledged, in id order.
type rows []string

// insert writes v through m and requires the acknowledgement of row
// len(*rs)+1 (API.md 1.4).
func (rs *rows) insert(t *testing.T, m *member, v string) response {
	t.Helper()
	r := m.execute(fmt.Sprintf(`["INSERT INTO t(v) VALUES('%s')"]`, v))
	wantOK(t, fmt.Sprintf("INSERT %s via %s", v, m.id), r,
		fmt.Sprintf(`{"results":[{"last_insert_id":%d,"rows_affected":1}]}`, len(*rs)+1))
	if r.status == http.StatusOK {
		*rs = append(*rs, v)
	}
	return r
}

// body is the exact answer to selectT holding rs (API.md 1.4).
func (rs rows) body() string {
	var vals []string
	for i, v := range rs {
		vals = append(vals, fmt.Sprintf(`[%d,"%s"]`, i+1, v))
	}
	return `{"results":[{"columns":["id","v"],"types":["integer","text"],"values":[` + strings.Join(vals, ",") + `]}]}`
}

const selectT = "SELECT id, v FROM t ORDER BY id"

// selectPath is GET /db/query for selectT plus params.
func selectPath(params ...string) string {
	return "/db/query?" + strings.Join(append([]string{"q=" + url.QueryEscape(selectT)}, params...), "&")
}

// waitRows polls selectT on m with params until it answers exactly rs,
// then returns how long that took.
func waitRows(t *testing.T, m *member, rs rows, params ...string) time.Duration {
	t.Helper()
	began := time.Now()
	deadline := began.Add(catchUpTimeout)
	want := rs.body()
	var last string
	for {
		r, err := m.do(m.client, http.MethodGet, selectPath(params...), "", nil)
		if err == nil && r.status == http.StatusOK && string(r.body) == want {
			return time.Since(began)
		}
		if err != nil {
			last = err.Error()
		} else {
			last = r.String()
		}
		if time.Now().After(deadline) {
			m.dumpLogs()
			t.Fatalf("%s did not answer %s with %v within %s:\n last: %s\n want: %s", m.id, selectPath(params...), params, catchUpTimeout, last, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// wantServedBy checks X-Rqlite-Served-By (API.md 1.7).
func wantServedBy(t *testing.T, what string, r response, want string) {
	t.Helper()
	if got := r.header.Get("X-Rqlite-Served-By"); got != want {
		t.Errorf("%s: X-Rqlite-Served-By %q, want %q (API.md 1.7)", what, got, want)
	}
}

// wantLeaderDoc checks that GET /leader on n names leader (API.md 2.2).
func wantLeaderDoc(t *testing.T, on *member, leader *member) {
	t.Helper()
	r := on.get("/leader")
	var d nodeDoc
	if r.status != http.StatusOK || json.Unmarshal(r.body, &d) != nil {
		t.Errorf("GET /leader on %s: %s", on.id, r)
		return
	}
	if err := d.wellFormed(); err != nil {
		t.Errorf("GET /leader on %s: %v", on.id, err)
	}
	if d.ID != leader.id || d.Addr != leader.raftAddr || d.APIAddr != leader.apiURL() || !d.leader() || !d.voter() || !d.reachable() {
		t.Errorf("GET /leader on %s: %s; want %s at %s / %s, leader, voter, reachable", on.id, r.body, leader.id, leader.raftAddr, leader.apiURL())
	}
}

// waitElected polls /status on each of ms until they all name the same
// leader, one of ms, which reports itself Leader, and all are ready
// (store.ready); it returns the leader.
func (c *cluster) waitElected(ms []*member) *member {
	c.t.Helper()
	deadline := time.Now().Add(clusterTimeout)
	var last []string
	for {
		last = last[:0]
		leaders := map[string]bool{}
		states := map[string]string{}
		ready := true
		for _, m := range ms {
			st, err := fetchStatus(m.client, m.baseURL())
			if err != nil {
				last = append(last, fmt.Sprintf("%s: %v", m.id, err))
				continue
			}
			leaders[st.leaderID] = true
			states[m.id] = st.raftState
			ready = ready && st.ready
			last = append(last, fmt.Sprintf("%s: leader %q, raft %s, ready %v", m.id, st.leaderID, st.raftState, st.ready))
		}
		if len(states) == len(ms) && len(leaders) == 1 && ready {
			for id := range leaders {
				for _, m := range ms {
					if m.id == id && states[id] == "Leader" {
						return m
					}
				}
			}
		}
		if time.Now().After(deadline) {
			c.dumpLogs()
			c.t.Fatalf("no leader among %d nodes within %s: %v", len(ms), clusterTimeout, last)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestClusterJoinReplicatesAndFailsOver: three nodes (n2 joins through
// n1's Raft address, n3 through its API URL) replicate writes made on any
// node, survive the loss of their leader, and the old leader catches up
// when it comes back.
func TestClusterJoinReplicatesAndFailsOver(t *testing.T) {
	c := newCluster(t, 3)
	leader := c.leader
	fs := others(c.ms, leader)
	f1, f2 := fs[0], fs[1]
	wantLeaderDoc(t, f1, leader)

	// A write through a follower is forwarded to the leader, whose Raft
	// address X-Rqlite-Served-By names (API.md 1.7).
	r := f1.execute(createT)
	wantOK(t, "CREATE TABLE via follower "+f1.id, r, `{"results":[{}]}`)
	wantServedBy(t, "write via follower", r, leader.raftAddr)
	var rs rows
	rs.insert(t, f1, "one")
	rs.insert(t, f2, "two")
	rs.insert(t, leader, "three")
	// A linearizable read on the other follower sees every acknowledged
	// write at once (API.md 1.8), with no wait at all.
	r = f2.get(selectPath("level=linearizable"))
	wantOK(t, "linearizable read on follower "+f2.id+" right after the writes", r, rs.body())
	wantServedBy(t, "linearizable read via follower", r, leader.raftAddr)
	r = f1.get(selectPath("level=strong"))
	wantOK(t, "strong read on follower "+f1.id, r, rs.body())
	// /readyz?sync waits for a ReadIndex round on the follower (API.md 2.3).
	wantResp(t, "readyz?sync on follower "+f2.id, f2.get("/readyz?sync"), http.StatusOK,
		"[+]node ok\n[+]leader ok\n[+]store ok\n[+]sync ok\n[+]db ok")
	// A level=none read is local, and says so (API.md 1.7); the follower
	// may lag, so it is polled.
	waitRows(t, f2, rs, "level=none")
	r = f2.get(selectPath("level=none"))
	wantServedBy(t, "level=none read on a follower", r, f2.httpAddr)

	// The leader dies. The survivors elect one of themselves.
	killedAt := time.Now()
	leader.sigkill()
	newLeader := c.waitElected(fs)
	t.Logf("%s killed; %s elected after %s", leader.id, newLeader.id, time.Since(killedAt).Round(time.Millisecond))
	// Writes through either survivor succeed.
	for _, m := range fs {
		r := rs.insert(t, m, "after-kill-via-"+m.id)
		want := newLeader.httpAddr
		if m != newLeader {
			want = newLeader.raftAddr
		}
		wantServedBy(t, "write via survivor "+m.id, r, want)
	}
	wantOK(t, "linearizable read after failover", f1.get(selectPath("level=linearizable")), rs.body())

	// /nodes on a survivor answers promptly although a peer is dead, and
	// shows it unreachable with an error (API.md 2.2).
	for _, m := range fs {
		began := time.Now()
		docs, r, err := fetchNodes(m.node, "/nodes?ver=2")
		took := time.Since(began)
		t.Logf("/nodes?ver=2 on %s with %s dead took %s", m.id, leader.id, took.Round(time.Millisecond))
		if err != nil {
			t.Fatalf("/nodes on %s: %v", m.id, err)
		}
		if took > nodesAnswerBound {
			t.Errorf("/nodes on %s took %s with a dead peer, want under %s", m.id, took, nodesAnswerBound)
		}
		if len(docs) != 3 {
			t.Fatalf("/nodes on %s lists %d nodes, want 3: %s", m.id, len(docs), r.body)
		}
		for _, d := range docs {
			switch d.ID {
			case leader.id:
				if d.reachable() || d.Error == "" || d.leader() {
					t.Errorf("/nodes on %s: dead %s should be reachable:false, leader:false, with an error: %+v (%s)", m.id, d.ID, d, r.body)
				}
			default:
				if !d.reachable() || d.leader() != (d.ID == newLeader.id) || !d.voter() {
					t.Errorf("/nodes on %s: %s should be a reachable voter, leader=%v: %s", m.id, d.ID, d.ID == newLeader.id, r.body)
				}
			}
		}
		// The legacy map says the same (API.md 2.2).
		if docs, r, err := fetchNodes(m.node, "/nodes"); err != nil || len(docs) != 3 {
			t.Errorf("legacy /nodes on %s: %v %s", m.id, err, r.body)
		}
	}
	wantLeaderDoc(t, f1, newLeader)

	// The old leader comes back without -join and catches up.
	leader.setFlags()
	leader.start()
	leader.waitReady(clusterTimeout)
	took := waitRows(t, leader, rs, "level=none")
	t.Logf("restarted %s caught up %d rows %s after /readyz", leader.id, len(rs), took.Round(time.Millisecond))
	c.waitMembers(c.ms, c.ids(), nil)
	rs.insert(t, leader, "after-restart")
	for _, m := range c.ms {
		waitRows(t, m, rs, "level=none")
	}
}

// TestClusterRedirectAndServedBy: ?redirect on a follower answers 301 to
// the leader's API address with the path and raw query (API.md 1.7), and
// X-Rqlite-Served-By tells forwarded from local answers.
func TestClusterRedirectAndServedBy(t *testing.T) {
	c := newCluster(t, 3)
	leader := c.leader
	f := others(c.ms, leader)[0]
	wantOK(t, "CREATE TABLE", leader.execute(createT), `{"results":[{}]}`)
	var rs rows
	rs.insert(t, leader, "one")

	// A write with ?redirect on a follower: 301, Location exactly the
	// leader's API URL plus path and raw query, empty body; not applied.
	r := f.post("/db/execute?redirect", `["INSERT INTO t(v) VALUES('redirected')"]`)
	wantRedirect(t, "POST /db/execute?redirect on follower", r, leader.apiURL()+"/db/execute?redirect")
	// The raw query is kept as sent, other parameters included.
	r = f.post("/db/execute?timings&redirect&transaction", `["INSERT INTO t(v) VALUES('redirected')"]`)
	wantRedirect(t, "POST /db/execute?timings&redirect&transaction on follower", r, leader.apiURL()+"/db/execute?timings&redirect&transaction")

	// Reads at a level the leader must serve redirect too.
	q := "q=" + url.QueryEscape(selectT) + "&level=weak&redirect"
	r = f.get("/db/query?" + q)
	wantRedirect(t, "GET /db/query level=weak&redirect on follower", r, leader.apiURL()+"/db/query?"+q)
	r = f.post("/db/query?level=linearizable&redirect", `["`+selectT+`"]`)
	wantRedirect(t, "POST /db/query level=linearizable&redirect on follower", r, leader.apiURL()+"/db/query?level=linearizable&redirect")
	// The default level is weak (API.md 1.8).
	q = "q=" + url.QueryEscape(selectT) + "&redirect"
	r = f.get("/db/query?" + q)
	wantRedirect(t, "GET /db/query?redirect (default level) on follower", r, leader.apiURL()+"/db/query?"+q)

	// level=none is served locally even with ?redirect; it names the
	// follower's own HTTP address.
	waitRows(t, f, rs, "level=none")
	r = f.get(selectPath("level=none", "redirect"))
	wantOK(t, "level=none&redirect on follower", r, rs.body())
	wantServedBy(t, "level=none&redirect on follower", r, f.httpAddr)

	// On the leader ?redirect changes nothing.
	r = leader.post("/db/execute?redirect", `["INSERT INTO t(v) VALUES('two')"]`)
	wantOK(t, "POST /db/execute?redirect on the leader", r, `{"results":[{"last_insert_id":2,"rows_affected":1}]}`)
	wantServedBy(t, "write on the leader", r, leader.httpAddr)
	if r.status == http.StatusOK {
		rs = append(rs, "two")
	}
	r = leader.get(selectPath("level=weak", "redirect"))
	wantOK(t, "level=weak&redirect on the leader", r, rs.body())
	wantServedBy(t, "weak read on the leader", r, leader.httpAddr)

	// Without ?redirect the follower forwards, and names the leader's Raft
	// address.
	r = f.get(selectPath("level=weak"))
	wantOK(t, "weak read via follower", r, rs.body())
	wantServedBy(t, "weak read via follower", r, leader.raftAddr)

	// None of the redirected writes was applied.
	wantOK(t, "rows after the redirects", leader.get(selectPath("level=strong")), rs.body())
}

// wantRedirect checks a 301 to location with an empty body (API.md 1.7).
func wantRedirect(t *testing.T, what string, r response, location string) {
	t.Helper()
	if r.status != http.StatusMovedPermanently || r.header.Get("Location") != location || len(r.body) != 0 {
		t.Errorf("%s:\n got: %d Location %q body %q\nwant: 301 Location %q, empty body (API.md 1.7)",
			what, r.status, r.header.Get("Location"), r.body, location)
	}
}

// TestClusterStepdown: POST /leader hands leadership to the node named in
// {"id":...}, on the leader or through a follower (API.md 1.1, 1.7), and
// ?redirect follows the new leader.
func TestClusterStepdown(t *testing.T) {
	c := newCluster(t, 3)
	leader := c.leader
	fs := others(c.ms, leader)

	// On the leader, naming a follower.
	target := fs[0]
	r := leader.post("/leader", fmt.Sprintf(`{"id":%q}`, target.id))
	wantOK(t, "POST /leader {id:"+target.id+"} on the leader", r, "")
	c.waitLeader(target)
	for _, m := range c.ms {
		wantLeaderDoc(t, m, target)
	}
	// ?redirect now points at the new leader (rqlite's
	// test_leader_redirect).
	r = leader.post("/db/execute?redirect", createT)
	wantRedirect(t, "POST /db/execute?redirect on the old leader", r, target.apiURL()+"/db/execute?redirect")
	wantOK(t, "write after stepdown", leader.execute(createT), `{"results":[{}]}`)

	// Through a follower (forwarded to the leader, API.md 1.7).
	via, next := others(c.ms, target)[0], others(c.ms, target)[1]
	r = via.post("/leader", fmt.Sprintf(`{"id":%q}`, next.id))
	wantOK(t, "POST /leader {id:"+next.id+"} on follower "+via.id, r, "")
	c.waitLeader(next)

	// Without a body: leadership moves to another voter.
	r = next.post("/leader", "")
	wantOK(t, "POST /leader without a body on the leader", r, "")
	deadline := time.Now().Add(clusterTimeout)
	for {
		l := c.waitElected(c.ms)
		if l != next {
			t.Logf("stepdown without a body moved leadership from %s to %s", next.id, l.id)
			break
		}
		if time.Now().After(deadline) {
			c.dumpLogs()
			t.Fatalf("%s still leads %s after POST /leader without a body", next.id, clusterTimeout)
		}
		time.Sleep(50 * time.Millisecond)
	}

	// An unknown node: 404.
	r = c.ms[0].post("/leader", `{"id":"no-such-node"}`)
	if r.status != http.StatusNotFound {
		t.Errorf("POST /leader naming an unknown node: %s, want 404", r)
	}
	var rs rows
	rs.insert(t, c.ms[0], "still-writable")
}

// waitLeader polls until every member names want as leader in /status.
func (c *cluster) waitLeader(want *member) {
	c.t.Helper()
	began := time.Now()
	deadline := began.Add(clusterTimeout)
	for {
		l := c.waitElected(c.ms)
		if l == want {
			c.t.Logf("%s leads after %s", want.id, time.Since(began).Round(time.Millisecond))
			return
		}
		if time.Now().After(deadline) {
			c.dumpLogs()
			c.t.Fatalf("leader is %s, not %s, %s after the stepdown", l.id, want.id, clusterTimeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestClusterRemoveAndRejoin: DELETE /remove through a follower takes n3
// out (API.md 1.1, 5); n3, wiped, joins again and gets the data back; a
// removal through the leader works too.
func TestClusterRemoveAndRejoin(t *testing.T) {
	c := newCluster(t, 3)
	leader := c.leader
	n1, n2, n3 := c.ms[0], c.ms[1], c.ms[2]
	wantOK(t, "CREATE TABLE", leader.execute(createT), `{"results":[{}]}`)
	var rs rows
	rs.insert(t, n1, "one")
	rs.insert(t, n2, "two")

	// Through a follower other than n3.
	via := others(c.ms, leader, n3)[0]
	r, err := via.do(via.client, http.MethodDelete, "/remove", "application/json", strings.NewReader(`{"id":"n3"}`))
	if err != nil {
		t.Fatal(err)
	}
	wantOK(t, "DELETE /remove {id:n3} via follower "+via.id, r, "")
	rest := []*member{n1, n2}
	c.waitMembers(rest, []string{"n1", "n2"}, nil)
	// The removed node tells the truth until it is stopped: not ready, and
	// data requests refused. When it applied its own removal its phase is
	// "removed"; a node cut off before the removal reached it cannot know,
	// and reports that it has no leader (Raft cannot tell it more).
	deadline := time.Now().Add(clusterTimeout)
	for {
		r := n3.get("/readyz")
		st, err := fetchStatus(n3.client, n3.baseURL())
		if err == nil && (st.state == "removed" || st.state == "degraded") && r.status == http.StatusServiceUnavailable {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("removed n3: /readyz %s, status %+v, %v", r, st, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if r := n3.execute(`["SELECT 1"]`); r.status != http.StatusServiceUnavailable {
		t.Errorf("write on the removed node: %s, want 503", r)
	}
	// The legacy map agrees.
	for _, m := range rest {
		if docs, r, err := fetchNodes(m.node, "/nodes"); err != nil || len(docs) != 2 {
			t.Errorf("legacy /nodes on %s after removing n3: %v %s", m.id, err, r.body)
		}
	}
	// An unknown ID: an empty 200, as rqlite answers (repeatable remove
	// scripts), on a follower and on the leader.
	for _, m := range rest {
		r, err := m.do(m.client, http.MethodDelete, "/remove", "application/json", strings.NewReader(`{"id":"no-such-node"}`))
		if err != nil {
			t.Fatal(err)
		}
		if r.status != http.StatusOK || len(r.body) != 0 {
			t.Errorf("DELETE /remove of an unknown node on %s: %s, want an empty 200", m.id, r)
		}
	}
	// The remaining two still write.
	rs.insert(t, n1, "while-n3-is-out")
	rs.insert(t, n2, "while-n3-is-out-2")

	// n3 is stopped (or has stopped itself), wiped, and joins again.
	if n3.proc.exited() {
		t.Logf("removed n3 exited on its own: %v", n3.proc.waitErr)
	} else {
		n3.sigterm()
	}
	if err := os.RemoveAll(n3.dataDir); err != nil {
		t.Fatal(err)
	}
	n3.setFlags("-join", n1.raftAddr+","+n2.raftAddr)
	n3.start()
	n3.waitReady(clusterTimeout)
	leader = c.byID(c.waitMembers(c.ms, c.ids(), nil))
	took := waitRows(t, n3, rs, "level=none")
	t.Logf("rejoined n3 had all %d rows %s after /readyz", len(rs), took.Round(time.Millisecond))
	rs.insert(t, n3, "via-rejoined-n3")

	// Through the leader this time, removing the other original member
	// that is not the leader (n3 stays, for the restart below).
	victim := others(c.ms, leader, n3)[0]
	r, err = leader.do(leader.client, http.MethodDelete, "/remove", "application/json", strings.NewReader(fmt.Sprintf(`{"id":%q}`, victim.id)))
	if err != nil {
		t.Fatal(err)
	}
	wantOK(t, "DELETE /remove {id:"+victim.id+"} on the leader", r, "")
	rest = others(c.ms, victim)
	restIDs := []string{rest[0].id, rest[1].id}
	c.waitMembers(rest, restIDs, nil)
	rs.insert(t, rest[0], "after-second-removal")
	for _, m := range rest {
		waitRows(t, m, rs, "level=none")
	}

	// A restart with -join still on the command line (as a fixed service
	// definition has it) is a plain restart: the flag is ignored for a
	// member (API.md 5), and n3 comes back as the same voter.
	n3.sigterm()
	n3.start()
	n3.waitReady(clusterTimeout)
	c.waitMembers(rest, restIDs, nil)
	waitRows(t, n3, rs, "level=none")
	rs.insert(t, n3, "via-restarted-n3")
}

// TestClusterWholeRestart: every node is stopped with SIGTERM and started
// again without -join; they elect a leader and every node has all rows.
func TestClusterWholeRestart(t *testing.T) {
	c := newCluster(t, 3)
	leader := c.leader
	wantOK(t, "CREATE TABLE", leader.execute(createT), `{"results":[{}]}`)
	var rs rows
	for i := range 3 {
		for _, m := range c.ms {
			rs.insert(t, m, fmt.Sprintf("%s-%d", m.id, i))
		}
	}
	for _, m := range c.ms {
		waitRows(t, m, rs, "level=none")
	}

	began := time.Now()
	c.stopAll()
	if t.Failed() {
		t.FailNow()
	}
	t.Logf("all 3 stopped in %s", time.Since(began).Round(time.Millisecond))

	began = time.Now()
	for _, m := range c.ms {
		m.setFlags()
		m.start()
	}
	for _, m := range c.ms {
		m.waitReady(clusterTimeout)
	}
	leader = c.byID(c.waitMembers(c.ms, c.ids(), nil))
	t.Logf("restarted cluster ready under %s in %s", leader.id, time.Since(began).Round(time.Millisecond))
	for _, m := range c.ms {
		waitRows(t, m, rs, "level=none")
		wantOK(t, "linearizable read on "+m.id+" after the restart", m.get(selectPath("level=linearizable")), rs.body())
	}
	for _, m := range c.ms {
		rs.insert(t, m, "after-restart-via-"+m.id)
	}
	for _, m := range c.ms {
		waitRows(t, m, rs, "level=none")
	}
}

// TestClusterReadReplica: a node started with -raft-non-voter joins as a
// read replica: /nodes lists it only with ?nonvoters, it serves level=none
// (and auto) locally and forwards writes (API.md 1.7, 1.8, 2.2, 5).
func TestClusterReadReplica(t *testing.T) {
	c := newCluster(t, 3)
	leader := c.leader
	wantOK(t, "CREATE TABLE", leader.execute(createT), `{"results":[{}]}`)
	var rs rows
	rs.insert(t, leader, "before-replica")

	voters := c.ids()
	n4 := c.add("n4", "-raft-non-voter", "-join", c.ms[1].raftAddr)
	n4.start()
	n4.waitReady(clusterTimeout)
	leaderID := c.waitMembers(c.ms, voters, []string{"n4"})
	leader = c.byID(leaderID)

	// Without ?nonvoters the replica is not listed (API.md 2.2).
	for _, m := range c.ms {
		for _, path := range []string{"/nodes?ver=2", "/nodes"} {
			docs, r, err := fetchNodes(m.node, path)
			if err != nil {
				t.Errorf("%s on %s: %v", path, m.id, err)
				continue
			}
			if _, err := c.settled(docs, voters, nil); err != nil {
				t.Errorf("%s on %s: %v: %s", path, m.id, err, r.body)
			}
		}
		docs, r, err := fetchNodes(m.node, "/nodes?nonvoters")
		if err != nil {
			t.Errorf("legacy /nodes?nonvoters on %s: %v", m.id, err)
		} else if _, err := c.settled(docs, voters, []string{"n4"}); err != nil {
			t.Errorf("legacy /nodes?nonvoters on %s: %v: %s", m.id, err, r.body)
		}
	}

	// Reads at level none and auto are local on a replica.
	waitRows(t, n4, rs, "level=none")
	r := n4.get(selectPath("level=none"))
	wantServedBy(t, "level=none on the replica", r, n4.httpAddr)
	r = n4.get(selectPath("level=auto"))
	wantOK(t, "level=auto on the replica", r, rs.body())
	wantServedBy(t, "level=auto on the replica (served locally, API.md 1.7)", r, n4.httpAddr)
	// Served locally, so ?redirect has nothing to redirect (API.md 1.7).
	r = n4.get(selectPath("level=auto", "redirect"))
	wantOK(t, "level=auto&redirect on the replica", r, rs.body())

	// Writes through the replica are forwarded to the leader.
	r = rs.insert(t, n4, "via-replica")
	wantServedBy(t, "write via the replica", r, leader.raftAddr)
	r = n4.get(selectPath("level=linearizable"))
	wantOK(t, "linearizable read via the replica", r, rs.body())
	wantServedBy(t, "linearizable read via the replica", r, leader.raftAddr)
	for _, m := range c.ms {
		waitRows(t, m, rs, "level=none")
	}

	// The replica stays a non-voter and follows a leader change.
	fs := others(c.ms, leader, n4)
	wantOK(t, "stepdown to "+fs[0].id, leader.post("/leader", fmt.Sprintf(`{"id":%q}`, fs[0].id)), "")
	c.waitLeader(fs[0])
	rs.insert(t, n4, "via-replica-after-stepdown")
	waitRows(t, n4, rs, "level=none")
	c.waitMembers(c.ms, voters, []string{"n4"})

	// The replica removes itself: like any request a non-leader cannot
	// serve, it goes to the leader (API.md 1.7), and the removal is
	// acknowledged with the usual empty 200 (API.md 1.1).
	r, err := n4.do(n4.client, http.MethodDelete, "/remove", "application/json", strings.NewReader(`{"id":"n4"}`))
	if err != nil {
		t.Fatal(err)
	}
	wantOK(t, "DELETE /remove {id:n4} through n4 itself", r, "")
	c.waitMembers(others(c.ms, n4), voters, nil)
	rs.insert(t, fs[0], "after-replica-removal")
}

// TestClusterFreshness: level=none with freshness is served by a follower
// that hears from its leader, however long the cluster has been idle, and
// refused with "stale read" once it has not heard from one within the
// bound (API.md 1.6, 1.8).
func TestClusterFreshness(t *testing.T) {
	c := newCluster(t, 3)
	leader := c.leader
	wantOK(t, "CREATE TABLE", leader.execute(createT), `{"results":[{}]}`)
	var rs rows
	rs.insert(t, leader, "one")
	fs := others(c.ms, leader)
	for _, f := range fs {
		waitRows(t, f, rs, "level=none")
	}
	// Idle for longer than the bound: the leader's heartbeats are
	// contact, so the followers are still fresh. (The wait is the
	// condition under test, not a synchronisation.)
	idle := 2 * time.Second
	time.Sleep(idle)
	for _, f := range fs {
		r := f.get(selectPath("level=none", "freshness=1s"))
		wantOK(t, fmt.Sprintf("level=none&freshness=1s on follower %s after %s idle", f.id, idle), r, rs.body())
		if st := f.get("/status?key=store.raft.last_contact"); st.status == http.StatusOK {
			t.Logf("%s store.raft.last_contact after %s idle: %s", f.id, idle, st.body)
		}
	}
	// Right after a write has reached it, a follower is fresh all the more.
	rs.insert(t, fs[0], "two")
	waitRows(t, fs[1], rs, "level=none")
	wantOK(t, "level=none&freshness=1s on follower "+fs[1].id+" right after a replicated write",
		fs[1].get(selectPath("level=none", "freshness=1s")), rs.body())

	// The leader and one follower die: the survivor has no leader, and
	// soon refuses bounded reads; unbounded ones are still served.
	survivor := fs[1]
	leader.sigkill()
	fs[0].sigkill()
	deadline := time.Now().Add(clusterTimeout)
	const stale = `{"results":[],"error":"stale read"}`
	for {
		r := survivor.get(selectPath("level=none", "freshness=1s"))
		if r.status == http.StatusOK && string(r.body) == stale {
			break
		}
		if time.Now().After(deadline) {
			survivor.dumpLogs()
			t.Fatalf("survivor without a quorum still answers level=none&freshness=1s with %s after %s, want 200 %s", r, clusterTimeout, stale)
		}
		time.Sleep(100 * time.Millisecond)
	}
	wantOK(t, "level=none without freshness on the survivor", survivor.get(selectPath("level=none")), rs.body())
}

// TestClusterBootstrapExpect: three nodes started together with
// -bootstrap-expect 3 and the same -join list form one cluster with no
// node joining another (API.md 5, "Auto-clustering"); a restart needs
// neither flag's effect again.
func TestClusterBootstrapExpect(t *testing.T) {
	c := &cluster{t: t}
	var addrs []string
	for i := 1; i <= 3; i++ {
		m := c.add(fmt.Sprintf("n%d", i))
		addrs = append(addrs, m.raftAddr)
	}
	// The API URL form works too.
	addrs[2] = c.ms[2].apiURL()
	for _, m := range c.ms {
		m.setFlags("-bootstrap-expect", "3", "-join", strings.Join(addrs, ","))
		m.start()
	}
	t.Cleanup(c.stopAll)
	rs := checkFormed(t, c)
	c.stopAll()
	if t.Failed() {
		t.FailNow()
	}
	for _, m := range c.ms {
		m.start() // same flags: the recorded founders are used, nothing is discovered again
	}
	for _, m := range c.ms {
		m.waitReady(clusterTimeout)
	}
	c.waitMembers(c.ms, c.ids(), nil)
	for _, m := range c.ms {
		waitRows(t, m, rs, "level=none")
	}
}

// TestClusterFiveNodesSurviveTwoFailures: a 5-voter cluster keeps taking
// writes on any survivor with two nodes (the leader among them) killed, and
// the killed nodes catch up when they return.
func TestClusterFiveNodesSurviveTwoFailures(t *testing.T) {
	c := newCluster(t, 5)
	wantOK(t, "CREATE TABLE", c.leader.execute(createT), `{"results":[{}]}`)
	var rs rows
	for _, m := range c.ms {
		rs.insert(t, m, "before-"+m.id)
	}
	dead := []*member{c.leader, others(c.ms, c.leader)[0]}
	for _, m := range dead {
		m.sigkill()
	}
	alive := others(c.ms, dead...)
	c.waitElected(alive)
	for _, m := range alive {
		rs.insert(t, m, "during-"+m.id)
	}
	for _, m := range alive {
		wantOK(t, "linearizable read on "+m.id, m.get(selectPath("level=linearizable")), rs.body())
	}
	for _, m := range dead {
		m.setFlags()
		m.start()
	}
	for _, m := range dead {
		m.waitReady(clusterTimeout)
		waitRows(t, m, rs, "level=none")
	}
	c.waitMembers(c.ms, c.ids(), nil)
}

// TestClusterLostQuorumRecovery: the documented procedure for a cluster
// whose majority is gone for good (docs/cluster.md; rqlite's peers.json):
// export a snapshot on the survivor (no quorum needed), stop it, rewrite
// its Raft state with itself as the only voter, start it. Every write
// acknowledged before the loss is there, and the cluster grows again by
// ordinary joins.
func TestClusterLostQuorumRecovery(t *testing.T) {
	c := newCluster(t, 3)
	wantOK(t, "CREATE TABLE", c.leader.execute(createT), `{"results":[{}]}`)
	var rs rows
	for _, m := range c.ms {
		rs.insert(t, m, "before-"+m.id)
	}
	survivor := others(c.ms, c.leader)[0]
	waitRows(t, survivor, rs, "level=none")
	lost := others(c.ms, survivor)
	for _, m := range lost {
		m.sigkill()
	}
	// No quorum: writes fail, but the export is local.
	r := survivor.post("/snapshot?export", "")
	if r.status != http.StatusOK {
		t.Fatalf("export: %s", r)
	}
	var out struct {
		ExportDir string `json:"export_dir"`
	}
	if err := json.Unmarshal([]byte(r.body), &out); err != nil || out.ExportDir == "" {
		t.Fatalf("export answer %s: %v", r, err)
	}
	if err := survivor.stop(); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(skiffdBin, "-node-id", survivor.id, "-http-addr", survivor.httpAddr, "-raft-addr", survivor.raftAddr,
		"-recover-snapshot", out.ExportDir, "-recover-voters", survivor.id, survivor.dataDir)
	cmd.Env = append(os.Environ(), "GORACE=atexit_sleep_ms=100")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("recover: %v\n%s", err, b)
	}
	survivor.setFlags()
	survivor.start()
	survivor.waitReady(clusterTimeout)
	c.waitMembers([]*member{survivor}, []string{survivor.id}, nil)
	wantOK(t, "read after recovery", survivor.get(selectPath("level=linearizable")), rs.body())
	rs.insert(t, survivor, "after-recovery")
	// The lost nodes come back with new data directories, by joining.
	for _, m := range lost {
		if err := os.RemoveAll(m.dataDir); err != nil {
			t.Fatal(err)
		}
		m.setFlags("-join", survivor.raftAddr)
		m.start()
	}
	for _, m := range lost {
		m.waitReady(clusterTimeout)
		waitRows(t, m, rs, "level=none")
	}
	c.waitMembers(c.ms, c.ids(), nil)
}

// TestClusterAddressChange: a node moved to a new Raft address comes back
// with new data by -join; its old replica, found by node ID, is removed
// rather than left as a dead voter (API.md 5, "Address changes").
func TestClusterAddressChange(t *testing.T) {
	c := newCluster(t, 3)
	wantOK(t, "CREATE TABLE", c.leader.execute(createT), `{"results":[{}]}`)
	var rs rows
	rs.insert(t, c.leader, "before-move")
	moved := others(c.ms, c.leader)[0]
	if err := moved.stop(); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(moved.dataDir); err != nil {
		t.Fatal(err)
	}
	moved.raftAddr = testport.Addr(t)
	moved.setFlags("-join", c.leader.raftAddr)
	moved.start()
	moved.waitReady(clusterTimeout)
	c.waitMembers(c.ms, c.ids(), nil) // three voters, all reachable: no ghost
	waitRows(t, moved, rs, "level=none")
	rs.insert(t, moved, "after-move")
	for _, m := range c.ms {
		waitRows(t, m, rs, "level=none")
	}
}
