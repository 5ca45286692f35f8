package test

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// waitLog waits until m's current run has logged s.
func waitLog(t *testing.T, m *member, s string) {
	t.Helper()
	deadline := time.Now().Add(catchUpTimeout)
	for !m.logContains(m.proc.logPath, s) {
		if time.Now().After(deadline) {
			m.dumpLogs()
			t.Fatalf("%s did not log %q within %s", m.id, s, catchUpTimeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestClusterReadReplicaRestart: a read replica restarts without -join
// (API.md 5: restarts need no -join; the rules on how a node enters a
// cluster apply to a new data directory only), stays a read replica even
// when -raft-non-voter is left out too, and serves level=none reads of
// rows written while it was down (API.md 1.8).
func TestClusterReadReplicaRestart(t *testing.T) {
	c := newCluster(t, 1)
	leader := c.leader
	wantOK(t, "CREATE TABLE", leader.execute(createT), `{"results":[{}]}`)
	var rs rows
	rs.insert(t, leader, "before-replica")

	n2 := c.add("n2", "-raft-non-voter", "-join", leader.raftAddr)
	n2.start()
	n2.waitReady(clusterTimeout)
	c.waitMembers(c.ms, []string{"n1"}, []string{"n2"})
	waitRows(t, n2, rs, "level=none")

	// The case: SIGKILL, then the same flags without -join.
	n2.sigkill()
	rs.insert(t, leader, "while-down-1")
	n2.setFlags("-raft-non-voter")
	n2.start()
	n2.waitReady(clusterTimeout)
	waitRows(t, n2, rs, "level=none")
	c.waitMembers(c.ms, []string{"n1"}, []string{"n2"})

	// No cluster flag at all: still a read replica (it must not promote
	// itself to voter), still serving.
	n2.sigkill()
	rs.insert(t, leader, "while-down-2")
	n2.setFlags()
	n2.start()
	n2.waitReady(clusterTimeout)
	waitRows(t, n2, rs, "level=none")
	rs.insert(t, leader, "after-restart")
	waitRows(t, n2, rs, "level=none")
	c.waitMembers(c.ms, []string{"n1"}, []string{"n2"})
}

// TestClusterRemoveOnShutdown: with -raft-cluster-remove-shutdown, a node
// stopped with SIGTERM leaves the configuration first (API.md 5): the
// other's /nodes lists it alone and it takes writes as a 1-node cluster.
// The leader is the one stopped, which also hands leadership over first
// (-raft-shutdown-stepdown, on by default). The last node, stopped at the
// end, is the only voter and stays the cluster.
func TestClusterRemoveOnShutdown(t *testing.T) {
	c := newClusterWith(t, 2, func(m *member) { m.args = append(m.args, "-raft-cluster-remove-shutdown") })
	leader := c.leader
	wantOK(t, "CREATE TABLE", leader.execute(createT), `{"results":[{}]}`)
	var rs rows
	rs.insert(t, leader, "two-nodes")
	other := others(c.ms, leader)[0]
	waitRows(t, other, rs, "level=none")

	leader.sigterm()
	if !leader.logContains(leader.proc.logPath, "removed this node from the cluster") {
		leader.dumpLogs()
		t.Fatalf("%s's log does not say it removed itself", leader.id)
	}
	c.waitMembers([]*member{other}, []string{other.id}, nil)
	rs.insert(t, other, "one-node")
	waitRows(t, other, rs, "level=linearizable")
}

// TestClusterShutdownStepdown: a leader stopped with SIGTERM hands
// leadership to another voter first (-raft-shutdown-stepdown defaults to
// true, API.md 5); the others report a new leader and take writes.
func TestClusterShutdownStepdown(t *testing.T) {
	c := newCluster(t, 3)
	leader := c.leader
	wantOK(t, "CREATE TABLE", leader.execute(createT), `{"results":[{}]}`)
	var rs rows
	rs.insert(t, leader, "before")

	leader.sigterm()
	if !leader.logContains(leader.proc.logPath, "leadership handed over") {
		leader.dumpLogs()
		t.Fatalf("%s's log does not say it handed leadership over", leader.id)
	}
	rest := others(c.ms, leader)
	next := c.waitElected(rest)
	if next == leader {
		t.Fatalf("the stopped node %s is still reported as leader", leader.id)
	}
	rs.insert(t, next, "after")
	for _, m := range rest {
		waitRows(t, m, rs, "level=none")
	}
}

// TestClusterReapNode: with -raft-reap-node-timeout, the leader removes a
// voter it cannot reach for longer than the timeout (API.md 5): a
// SIGKILLed follower disappears from /nodes and the cluster goes on
// taking writes.
func TestClusterReapNode(t *testing.T) {
	c := newClusterWith(t, 3, func(m *member) { m.args = append(m.args, "-raft-reap-node-timeout", "2s") })
	leader := c.leader
	wantOK(t, "CREATE TABLE", leader.execute(createT), `{"results":[{}]}`)
	var rs rows
	rs.insert(t, leader, "three")

	victim := others(c.ms, leader)[0]
	victim.sigkill()
	rest := others(c.ms, victim)
	var ids []string
	for _, m := range rest {
		ids = append(ids, m.id)
	}
	c.waitMembers(rest, ids, nil)
	waitLog(t, leader, "reaped an unreachable member")
	rs.insert(t, leader, "after-reap")
	for _, m := range rest {
		waitRows(t, m, rs, "level=none")
	}
}

// TestSnapshotWALSize: with -raft-snap-int and -raft-snap-wal-size
// (API.md 5), a SQLite WAL grown past the size is folded into the
// database file and truncated, with a snapshot taken, and the data stays.
func TestSnapshotWALSize(t *testing.T) {
	const limit = 200_000
	n := &member{node: newNode(t), id: "n1"}
	n.setFlags("-raft-snap-int", "200ms", "-raft-snap-wal-size", fmt.Sprint(limit))
	n.start()
	n.waitReady(readyTimeout)
	wantOK(t, "CREATE TABLE", n.execute(createT), `{"results":[{}]}`)
	// About 600 kB of rows, in one request (so the WAL outgrows the
	// limit between two checks).
	var stmts []string
	for i := range 30 {
		stmts = append(stmts, fmt.Sprintf(`"INSERT INTO t(v) VALUES('%d%s')"`, i, strings.Repeat("x", 20_000)))
	}
	r := n.execute("[" + strings.Join(stmts, ",") + "]")
	if r.status != http.StatusOK {
		t.Fatalf("insert: %s", r)
	}
	waitLog(t, n, "WAL past -raft-snap-wal-size")
	wals, err := filepath.Glob(filepath.Join(n.dataDir, "db", "*-wal"))
	if err != nil || len(wals) == 0 {
		t.Fatalf("no SQLite WAL under %s: %v", n.dataDir, err)
	}
	for _, w := range wals {
		if fi, err := os.Stat(w); err == nil && fi.Size() >= limit {
			t.Errorf("%s is %d bytes after the WAL-size snapshot, want under %d", w, fi.Size(), limit)
		}
	}
	wantOK(t, "count", n.query("SELECT COUNT(*) FROM t"), `{"results":[{"columns":["COUNT(*)"],"types":["integer"],"values":[[30]]}]}`)
}

// TestClusterReapReadOnlyNode: with -raft-reap-read-only-node-timeout, the
// leader removes a read replica it cannot reach for longer (API.md 5).
func TestClusterReapReadOnlyNode(t *testing.T) {
	c := newClusterWith(t, 1, func(m *member) { m.args = append(m.args, "-raft-reap-read-only-node-timeout", "2s") })
	leader := c.leader
	n2 := c.add("n2", "-raft-non-voter", "-join", leader.raftAddr)
	n2.start()
	n2.waitReady(clusterTimeout)
	c.waitMembers(c.ms, []string{"n1"}, []string{"n2"})

	n2.sigkill()
	c.waitMembers([]*member{leader}, []string{"n1"}, nil)
	waitLog(t, leader, "reaped an unreachable member")
	wantOK(t, "CREATE TABLE after the reap", leader.execute(createT), `{"results":[{}]}`)
}
