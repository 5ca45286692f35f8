package test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// Readiness and membership off the happy path (issue 14 §2): a joining
// voter is ready only once it votes (DESIGN.md "Cluster membership"),
// store.leader and /readyz agree (API.md 2.1, 2.3), every node names the
// leader by its node ID (API.md 2.2), a removed node learns it, and a node
// holding a cluster of its own refuses to join another (API.md 5).

// readyStatus is the part of /status these tests read (API.md 2.1 and
// Skiff's lifecycle section).
type readyStatus struct {
	Store struct {
		NodeID string `json:"node_id"`
		Ready  bool   `json:"ready"`
		Leader struct {
			Addr   string `json:"addr"`
			NodeID string `json:"node_id"`
		} `json:"leader"`
		Nodes []struct {
			ID       string `json:"id"`
			Addr     string `json:"addr"`
			Suffrage string `json:"suffrage"`
		} `json:"nodes"`
	} `json:"store"`
	Lifecycle struct {
		State     string `json:"state"`
		LastError string `json:"last_error"`
		Progress  struct {
			Step string `json:"step"`
		} `json:"progress"`
	} `json:"lifecycle"`
}

// getStatus reads /status on m; it never fails the test (for polls).
func getStatus(m *member) (readyStatus, error) {
	var doc readyStatus
	r, err := m.do(m.client, http.MethodGet, "/status", "", nil)
	if err != nil {
		return doc, err
	}
	if r.status != http.StatusOK {
		return doc, fmt.Errorf("/status: %s", r)
	}
	if err := json.Unmarshal(r.body, &doc); err != nil {
		return doc, fmt.Errorf("/status: %v: %.300q", err, r.body)
	}
	return doc, nil
}

// waitLeaderThenReady follows what rqlite's clients and scripts do: poll
// /status until store.leader.addr is set, then expect /readyz 200 at once
// (API.md 2.1, 2.3). Until then, /readyz must be 503 naming the phase. The
// leader, once reported, must be named by its node ID (never its Raft
// address), and /leader on the same node must name the same node.
func (c *cluster) waitLeaderThenReady(m *member) readyStatus {
	c.t.Helper()
	deadline := time.Now().Add(clusterTimeout)
	phases := map[string]bool{}
	for {
		st, err := getStatus(m)
		if err == nil {
			phases[st.Lifecycle.State+"/"+st.Lifecycle.Progress.Step] = true
			if st.Store.Leader.Addr != "" {
				r := m.get("/readyz")
				if r.status != http.StatusOK || string(r.body) != readyBody {
					c.dumpLogs()
					c.t.Fatalf("%s: store.leader %+v reported, then /readyz %s (API.md 2.3: a leader means ready)", m.id, st.Store.Leader, r)
				}
				c.wantNamedLeader(m, st)
				c.t.Logf("%s ready; phases seen: %v", m.id, phases)
				return st
			}
			r := m.get("/readyz")
			if r.status == http.StatusOK {
				// Ready in between the two requests: the next round
				// reads a leader.
				continue
			}
			if r.status != http.StatusServiceUnavailable || !strings.Contains(string(r.body), "store not ready (") && !strings.Contains(string(r.body), "leader does not exist") {
				c.t.Fatalf("%s not ready (%s): /readyz %s, want 503 naming why", m.id, st.Lifecycle.State, r)
			}
		}
		if time.Now().After(deadline) {
			c.dumpLogs()
			c.t.Fatalf("%s reported no leader within %s: %v", m.id, clusterTimeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// wantNamedLeader checks that st (m's /status) names the leader by node ID
// and that m's /leader names the same node (API.md 2.2).
func (c *cluster) wantNamedLeader(m *member, st readyStatus) {
	c.t.Helper()
	var leader *member
	for _, o := range c.ms {
		if o.raftAddr == st.Store.Leader.Addr {
			leader = o
		}
	}
	if leader == nil || st.Store.Leader.NodeID != leader.id {
		c.t.Fatalf("%s: store.leader %+v; want the node ID of the member at that address", m.id, st.Store.Leader)
	}
	r := m.get("/leader")
	var d nodeDoc
	if r.status != http.StatusOK || json.Unmarshal(r.body, &d) != nil || d.ID != leader.id || d.Addr != leader.raftAddr {
		c.t.Fatalf("%s: /status names leader %s, /leader answers %s", m.id, leader.id, r)
	}
}

// wantSelfVoter checks that st (m's /status) lists m as a voter.
func wantSelfVoter(t *testing.T, m *member, st readyStatus) {
	t.Helper()
	for _, n := range st.Store.Nodes {
		if n.ID == m.id {
			if n.Suffrage != "voter" {
				t.Fatalf("%s ready while %s in store.nodes %+v (DESIGN.md: ready means voting)", m.id, n.Suffrage, st.Store.Nodes)
			}
			return
		}
	}
	t.Fatalf("%s ready but absent from its own store.nodes %+v", m.id, st.Store.Nodes)
}

// formInOrder starts n1, waits for it, then starts each further node with
// -join n1 only once the previous one is ready, waiting for each the way
// rqlite's scripts do (waitLeaderThenReady). A node is ready only as a
// voter, so the cluster tolerates the failures its size promises as soon
// as the last node is ready.
func formInOrder(t *testing.T, size int) *cluster {
	t.Helper()
	c := &cluster{t: t}
	n1 := c.add("n1")
	n1.start()
	n1.waitReady(readyTimeout)
	for i := 2; i <= size; i++ {
		m := c.add(fmt.Sprintf("n%d", i), "-join", n1.raftAddr)
		m.start()
		st := c.waitLeaderThenReady(m)
		wantSelfVoter(t, m, st)
	}
	t.Cleanup(c.stopAll)
	return c
}

// TestReadyzMeansVoter: three nodes formed one after another, each waited
// for: one follower's death does not cost the quorum (DESIGN.md "Cluster
// membership"; issue 14 §2).
func TestReadyzMeansVoter(t *testing.T) {
	c := formInOrder(t, 3)
	n1 := c.ms[0]
	wantOK(t, "CREATE TABLE", n1.execute(createT), `{"results":[{}]}`)
	var rs rows
	rs.insert(t, n1, "one")
	// Kill the last follower to join: had it still been a learner, n1
	// and n2 would be the only voters and this would cost nothing; kill
	// the other one, so that n3 must vote.
	leader := c.byID(c.waitMembers(c.ms, c.ids(), nil))
	victim := c.ms[1]
	if victim == leader {
		victim = c.ms[2]
	}
	victim.sigkill()
	rs.insert(t, leader, "after-"+victim.id+"-died")
	wantOK(t, "linearizable read on the leader with one follower dead", leader.get(selectPath("level=linearizable")), rs.body())
}

// TestReadyzLeaderKilledAtOnce: three nodes formed one after another, each
// waited for, then the leader SIGKILLed at once: the other two elect a
// leader and take writes (issue 14 §2).
func TestReadyzLeaderKilledAtOnce(t *testing.T) {
	c := formInOrder(t, 3)
	leader := c.waitElected(c.ms)
	killedAt := time.Now()
	leader.sigkill()
	survivors := others(c.ms, leader)
	newLeader := c.waitElected(survivors)
	t.Logf("%s killed; %s elected after %s", leader.id, newLeader.id, time.Since(killedAt).Round(time.Millisecond))
	wantOK(t, "CREATE TABLE after the leader's death", newLeader.execute(createT), `{"results":[{}]}`)
	var rs rows
	for _, m := range survivors {
		rs.insert(t, m, "via-"+m.id)
	}
}

// TestTwoNodesLinearizableNeedsBoth: n2 is ready, so it votes; once it is
// killed, n1 alone is no quorum and must not serve linearizable or strong
// reads (API.md 1.8).
func TestTwoNodesLinearizableNeedsBoth(t *testing.T) {
	c := formInOrder(t, 2)
	n1, n2 := c.ms[0], c.ms[1]
	wantOK(t, "CREATE TABLE", n1.execute(createT), `{"results":[{}]}`)
	var rs rows
	rs.insert(t, n1, "one")
	n2.sigkill()
	for _, level := range []string{"level=linearizable", "level=strong"} {
		r := n1.get(selectPath(level))
		if r.status == http.StatusOK {
			t.Errorf("%s read on n1 alone (n2, a voter, dead): %s; want an error", level, r)
		}
		t.Logf("%s read on n1 alone: %s", level, r)
	}
	if r := n1.get("/readyz"); r.status != http.StatusServiceUnavailable {
		t.Logf("/readyz on n1 alone: %s", r)
	}
}

// TestFourthNodeNamesTheLeader: three nodes formed with -bootstrap-expect
// 3, then a fourth with the same flags: from the moment it reports a
// leader, it names it by node ID, and /status, /leader and /nodes agree on
// every node (API.md 2.1, 2.2).
func TestFourthNodeNamesTheLeader(t *testing.T) {
	c := &cluster{t: t}
	var addrs []string
	for i := 1; i <= 4; i++ {
		m := c.add(fmt.Sprintf("n%d", i))
		addrs = append(addrs, m.raftAddr)
	}
	join := strings.Join(addrs[:3], ",")
	for _, m := range c.ms {
		m.setFlags("-bootstrap-expect", "3", "-join", join)
	}
	t.Cleanup(c.stopAll)
	for _, m := range c.ms[:3] {
		m.start()
	}
	for _, m := range c.ms[:3] {
		m.waitReady(clusterTimeout)
	}
	c.waitMembers(c.ms[:3], c.ids()[:3], nil)
	n4 := c.ms[3]
	n4.start()
	c.waitLeaderThenReady(n4)
	leaderID := c.waitMembers(c.ms, c.ids(), nil)
	for _, m := range c.ms {
		st, err := getStatus(m)
		if err != nil {
			t.Fatal(err)
		}
		if st.Store.Leader.NodeID != leaderID {
			t.Errorf("%s: store.leader %+v, /nodes says %s", m.id, st.Store.Leader, leaderID)
		}
		c.wantNamedLeader(m, st)
	}
}

// TestRemovedNodeLearnsIt: a node removed with /remove stops taking part
// and says so: /status lifecycle.state "removed" with the reason, /readyz
// 503, a log line. With -raft-remove-shutdown it exits cleanly instead
// (API.md 5).
func TestRemovedNodeLearnsIt(t *testing.T) {
	c := newCluster(t, 3)
	leader := c.leader
	victim := others(c.ms, leader)[0]
	r, err := leader.do(leader.client, http.MethodDelete, "/remove", "application/json", strings.NewReader(fmt.Sprintf(`{"id":%q}`, victim.id)))
	if err != nil {
		t.Fatal(err)
	}
	wantOK(t, "DELETE /remove "+victim.id, r, "")
	rest := others(c.ms, victim)
	c.waitMembers(rest, []string{rest[0].id, rest[1].id}, nil)
	deadline := time.Now().Add(clusterTimeout)
	for {
		st, err := getStatus(victim)
		if err == nil && st.Lifecycle.State == "removed" {
			if !strings.HasPrefix(st.Lifecycle.LastError, "this node was removed from the cluster") || st.Store.Leader.Addr != "" || st.Store.Ready {
				t.Errorf("removed %s: last_error %q, store.leader %+v, ready %v", victim.id, st.Lifecycle.LastError, st.Store.Leader, st.Store.Ready)
			}
			t.Logf("%s: %s", victim.id, st.Lifecycle.LastError)
			break
		}
		if time.Now().After(deadline) {
			victim.dumpLogs()
			t.Fatalf("removed %s never said so: %+v %v", victim.id, st.Lifecycle, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if r := victim.get("/readyz"); r.status != http.StatusServiceUnavailable || !strings.Contains(string(r.body), "removed") {
		t.Errorf("/readyz on the removed node: %s, want 503 naming the phase", r)
	}
	if r := victim.execute(`["SELECT 1"]`); r.status != http.StatusServiceUnavailable {
		t.Errorf("write on the removed node: %s, want 503", r)
	}
	if !victim.logContains(victim.proc.logPath, "this node was removed from the cluster") {
		t.Errorf("the removed node did not log its removal")
	}
	if victim.proc.exited() {
		t.Errorf("removed node exited without -raft-remove-shutdown: %v", victim.proc.waitErr)
	}
	var rs rows
	wantOK(t, "CREATE TABLE", leader.execute(createT), `{"results":[{}]}`)
	rs.insert(t, rest[0], "after-removal")

	// A node removed while it was down never hears of it from Raft (the
	// leader no longer talks to it): back up, cut off, it asks its peers.
	// With -raft-remove-shutdown it then exits, status 0.
	n4 := c.add("n4", "-join", leader.raftAddr, "-raft-remove-shutdown")
	n4.start()
	n4.waitReady(clusterTimeout)
	c.waitMembers([]*member{leader, n4}, []string{rest[0].id, rest[1].id, "n4"}, nil)
	n4.sigterm()
	r, err = leader.do(leader.client, http.MethodDelete, "/remove", "application/json", strings.NewReader(`{"id":"n4"}`))
	if err != nil {
		t.Fatal(err)
	}
	wantOK(t, "DELETE /remove n4 while it is down", r, "")
	c.waitMembers(rest, []string{rest[0].id, rest[1].id}, nil)
	n4.setFlags("-raft-remove-shutdown")
	n4.start()
	select {
	case <-n4.proc.done:
	case <-time.After(clusterTimeout):
		n4.dumpLogs()
		t.Fatalf("n4 (-raft-remove-shutdown) still runs %s after restarting removed", clusterTimeout)
	}
	if code := n4.proc.exitCode(); code != 0 {
		n4.dumpLogs()
		t.Fatalf("n4 exited with status %d after learning of its removal, want 0 (%v)", code, n4.proc.waitErr)
	}
	if !n4.logContains(n4.proc.logPath, "lists replica") || !n4.logContains(n4.proc.logPath, "-raft-remove-shutdown") {
		n4.dumpLogs()
		t.Errorf("n4 did not log that a peer told it of its removal and why it shut down")
	}
	rs.insert(t, rest[1], "after-n4-left")
}

// TestJoinOtherClusterRefused: a node holding a cluster of its own,
// restarted with -join naming another cluster, exits with a clear error;
// restarted without -join it runs its own cluster, data intact. A member
// restarted with -join naming its own cluster starts as before (API.md 5:
// -join is ignored for a member).
func TestJoinOtherClusterRefused(t *testing.T) {
	c := &cluster{t: t}
	a := c.add("a")
	b := c.add("b")
	bb := c.add("bb", "-join", b.raftAddr)
	t.Cleanup(c.stopAll)
	a.start()
	b.start()
	a.waitReady(readyTimeout)
	b.waitReady(readyTimeout)
	bb.start()
	bb.waitReady(clusterTimeout)
	wantOK(t, "CREATE TABLE on a", a.execute(createT), `{"results":[{}]}`)
	var rs rows
	rs.insert(t, a, "a-own")

	a.sigterm()
	a.setFlags("-join", b.raftAddr)
	p := a.launch()
	select {
	case <-p.done:
	case <-time.After(clusterTimeout):
		a.dumpLogs()
		t.Fatalf("a, holding its own cluster, still runs %s after a start with -join to another cluster", clusterTimeout)
	}
	if code := p.exitCode(); code == 0 || !a.logContains(p.logPath, "this node belongs to another cluster") {
		a.dumpLogs()
		t.Fatalf("a exited with status %d; want a failure naming the other cluster", code)
	}
	a.setFlags()
	a.start()
	a.waitReady(readyTimeout)
	waitRows(t, a, rs, "level=none")

	// A member of b's cluster restarted with -join b: a plain restart.
	// b, one of two voters, is left without quorum (degraded) by then: it
	// still answers bb's no-op join, from its last membership read, for
	// only bb's Raft can end that.
	bb.sigterm()
	waitPhase(t, b, "degraded", nil)
	bb.start()
	bb.waitReady(clusterTimeout)
	if !bb.logContains(bb.proc.logPath, "already a member of that cluster") {
		t.Errorf("bb's restart with -join did not say the join was a no-op")
	}
	// The join is still sent, and the member counts it as ignored, as
	// rqlite's do (API.md 5).
	if !b.logContains(b.proc.logPath, "join ignored: already a member") {
		t.Errorf("b did not see bb's no-op join")
	}
}
