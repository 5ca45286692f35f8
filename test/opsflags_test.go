package test

import (
	"testing"
)

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
