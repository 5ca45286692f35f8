package test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/skiffdb/skiff/test/testport"
)

// peerEntry is one entry of rqlite's peers.json (API.md 5, "lost quorum").
type peerEntry struct {
	ID       string `json:"id"`
	Address  string `json:"address"`
	NonVoter bool   `json:"non_voter"`
}

// writePeers writes the same DATADIR/raft/peers.json for every member, at
// each member's current raftAddr; nonVoters are listed with non_voter.
func writePeers(t *testing.T, ms []*member, nonVoters ...*member) {
	t.Helper()
	var peers []peerEntry
	for _, m := range ms {
		peers = append(peers, peerEntry{ID: m.id, Address: m.raftAddr, NonVoter: slices.Contains(nonVoters, m)})
	}
	b, err := json.Marshal(peers)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if err := os.WriteFile(filepath.Join(m.dataDir, "raft", "peers.json"), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestPeersJSONMovesEveryNode follows rqlite's runbook for moving a whole
// cluster (API.md 5; docs/cluster.md): stop every node, write the same
// peers.json naming the new Raft addresses on each, restart them on those
// addresses with their old flags. The data is kept, the cluster forms on
// the new addresses, takes writes, and each peers.json becomes peers.info.
func TestPeersJSONMovesEveryNode(t *testing.T) {
	c := newCluster(t, 3)
	wantOK(t, "CREATE TABLE", c.leader.execute(createT), `{"results":[{}]}`)
	var rs rows
	for _, m := range c.ms {
		rs.insert(t, m, "before-"+m.id)
	}
	for _, m := range c.ms {
		waitRows(t, m, rs, "level=none")
	}
	c.stopAll()
	for _, m := range c.ms {
		m.raftAddr = testport.Addr(t)
	}
	writePeers(t, c.ms)
	startTogether(t, c.ms) // n2 and n3 still carry -join: a member ignores it
	for _, m := range c.ms {
		m.waitReady(clusterTimeout)
	}
	// /nodes names every node at its new address (settled checks addr).
	leader := c.byID(c.waitMembers(c.ms, c.ids(), nil))
	wantOK(t, "read after the move", leader.get(selectPath("level=linearizable")), rs.body())
	for _, m := range c.ms {
		rs.insert(t, m, "after-"+m.id)
	}
	for _, m := range c.ms {
		waitRows(t, m, rs, "level=none")
	}
	wantPeersUsed(t, c.ms)
	// A later restart is an ordinary one, on the new address.
	if err := leader.stop(); err != nil {
		t.Fatal(err)
	}
	leader.start()
	leader.waitReady(clusterTimeout)
	c.waitMembers(c.ms, c.ids(), nil)
	waitRows(t, leader, rs, "level=none")
}

// startTogether launches every member at once, then waits for each to
// serve: voters applying one peers.json wait for each other's recovered
// index before they import (docs/cluster.md).
func startTogether(t *testing.T, ms []*member) {
	t.Helper()
	procs := make([]*process, len(ms))
	for i, m := range ms {
		procs[i] = m.launch()
	}
	for i, m := range ms {
		if err := m.waitStarted(procs[i]); err != nil {
			m.dumpLogs()
			t.Fatalf("%s: %v", m.id, err)
		}
	}
}

// wantPeersUsed checks that each member renamed peers.json to peers.info.
func wantPeersUsed(t *testing.T, ms []*member) {
	t.Helper()
	for _, m := range ms {
		raftDir := filepath.Join(m.dataDir, "raft")
		if _, err := os.Stat(filepath.Join(raftDir, "peers.json")); !os.IsNotExist(err) {
			t.Errorf("%s: peers.json still there after use (stat: %v)", m.id, err)
		}
		if _, err := os.Stat(filepath.Join(raftDir, "peers.info")); err != nil {
			t.Errorf("%s: peers.info: %v", m.id, err)
		}
		// For the reader: the index each node recovered at, and the cost.
		for _, path := range m.logs {
			b, _ := os.ReadFile(path)
			for _, line := range strings.Split(string(b), "\n") {
				if strings.Contains(line, "peers.json applied") {
					t.Logf("%s: %s", m.id, line)
				}
			}
		}
	}
}

// TestPeersJSONReadReplica: a read replica listed with "non_voter": true
// (API.md 5) comes back as a read replica at its new address, with the
// data: Dragonboat's import makes voters only, so it re-joins the listed
// voters and receives the database (docs/cluster.md).
func TestPeersJSONReadReplica(t *testing.T) {
	c := newCluster(t, 2)
	r3 := c.add("r3", "-raft-non-voter=true", "-join", c.leader.raftAddr)
	r3.start()
	r3.waitReady(clusterTimeout)
	voters := []string{"n1", "n2"}
	c.waitMembers(c.ms, voters, []string{"r3"})
	wantOK(t, "CREATE TABLE", c.leader.execute(createT), `{"results":[{}]}`)
	var rs rows
	rs.insert(t, c.leader, "before")
	for _, m := range c.ms {
		waitRows(t, m, rs, "level=none")
	}
	c.stopAll()
	for _, m := range c.ms {
		m.raftAddr = testport.Addr(t)
	}
	writePeers(t, c.ms, r3)
	startTogether(t, c.ms)
	for _, m := range c.ms {
		m.waitReady(clusterTimeout)
	}
	leader := c.byID(c.waitMembers(c.ms, voters, []string{"r3"}))
	rs.insert(t, leader, "after")
	for _, m := range c.ms {
		waitRows(t, m, rs, "level=none")
	}
	wantPeersUsed(t, c.ms)
}

// TestPeersJSONRefusesUnlistedNode: a node that peers.json leaves out must
// not start on its old data (it would be a ghost member); it says why.
func TestPeersJSONRefusesUnlistedNode(t *testing.T) {
	n := newNode(t)
	n.start()
	n.waitReady(readyTimeout)
	if err := n.stop(); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal([]peerEntry{{ID: "other", Address: "127.0.0.1:1"}})
	if err := os.WriteFile(filepath.Join(n.dataDir, "raft", "peers.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	p := n.launch()
	select {
	case <-p.done:
	case <-time.After(httpUpTimeout + clusterTimeout):
		t.Fatal("a node not listed in peers.json kept running")
	}
	if p.exitCode() == 0 || !n.logContains(p.logPath, "is not listed") {
		n.dumpLogs()
		t.Fatalf("exit code %d; want a failure saying the node is not listed", p.exitCode())
	}
}

// TestClusterRejoinNewAddressKeepsDataDir: a stopped member restarted with
// -join, the same node ID and a new Raft address, its data directory kept
// (API.md 5, "Address changes"): the leader removes its old replica and
// adds the new one, which catches up with everything written meanwhile.
// Without -join (and no peers.json) the same restart is refused with a
// message saying what to do.
func TestClusterRejoinNewAddressKeepsDataDir(t *testing.T) {
	c := newCluster(t, 3)
	wantOK(t, "CREATE TABLE", c.leader.execute(createT), `{"results":[{}]}`)
	var rs rows
	rs.insert(t, c.leader, "before-move")
	moved := others(c.ms, c.leader)[0]
	waitRows(t, moved, rs, "level=none")
	if err := moved.stop(); err != nil {
		t.Fatal(err)
	}
	rs.insert(t, c.leader, "while-stopped")
	moved.raftAddr = testport.Addr(t)

	moved.setFlags()
	p := moved.launch()
	select {
	case <-p.done:
	case <-time.After(httpUpTimeout + clusterTimeout):
		t.Fatal("a node with a new Raft address and no -join kept running")
	}
	if p.exitCode() == 0 || !moved.logContains(p.logPath, "restart it with -join") {
		moved.dumpLogs()
		t.Fatalf("exit code %d; want a refusal naming -join", p.exitCode())
	}

	moved.setFlags("-join", c.leader.raftAddr)
	moved.start()
	moved.waitReady(clusterTimeout)
	c.waitMembers(c.ms, c.ids(), nil) // three voters at their addresses: no ghost
	waitRows(t, moved, rs, "level=none")
	rs.insert(t, moved, "after-move")
	for _, m := range c.ms {
		waitRows(t, m, rs, "level=none")
	}
	// The next restart needs no -join, on the new address.
	if err := moved.stop(); err != nil {
		t.Fatal(err)
	}
	moved.setFlags()
	moved.start()
	moved.waitReady(clusterTimeout)
	waitRows(t, moved, rs, "level=none")
	if b, err := os.ReadFile(moved.logs[len(moved.logs)-1]); err == nil && strings.Contains(string(b), "re-joining under the new address") {
		t.Error("a plain restart re-joined again")
	}
}

// TestPeersJSONLostQuorum: rqlite's lost-quorum runbook (API.md 5): two of
// three nodes are gone for good; the survivor, stopped, gets a peers.json
// naming itself alone and restarts as a one-node cluster with the data.
// The lost nodes come back with new data by -join.
func TestPeersJSONLostQuorum(t *testing.T) {
	c := newCluster(t, 3)
	wantOK(t, "CREATE TABLE", c.leader.execute(createT), `{"results":[{}]}`)
	var rs rows
	rs.insert(t, c.leader, "before")
	survivor := others(c.ms, c.leader)[0]
	waitRows(t, survivor, rs, "level=none")
	lost := others(c.ms, survivor)
	for _, m := range lost {
		m.sigkill()
	}
	if err := survivor.stop(); err != nil {
		t.Fatal(err)
	}
	writePeers(t, []*member{survivor})
	survivor.start()
	survivor.waitReady(clusterTimeout)
	c.waitMembers([]*member{survivor}, []string{survivor.id}, nil)
	wantOK(t, "read after recovery", survivor.get(selectPath("level=linearizable")), rs.body())
	wantPeersUsed(t, []*member{survivor})
	// The lost nodes join before anything is written: the database they
	// receive is the recovered one (Dragonboat's import forgets the
	// snapshot's on-disk index; docs/cluster.md, known gaps).
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
	rs.insert(t, survivor, "after")
	for _, m := range c.ms {
		waitRows(t, m, rs, "level=none")
	}
}

// TestPeersJSONNodeBehind: one node stopped early, so it recovers behind
// the others; the voters compare what each recovered at, and the one
// behind imports the snapshot of a node ahead instead of its own older
// state, so that every node starts from the same one (docs/cluster.md).
// Nothing acknowledged is lost.
func TestPeersJSONNodeBehind(t *testing.T) {
	c := newCluster(t, 3)
	wantOK(t, "CREATE TABLE", c.leader.execute(createT), `{"results":[{}]}`)
	var rs rows
	rs.insert(t, c.leader, "all-up")
	behind := others(c.ms, c.leader)[0]
	waitRows(t, behind, rs, "level=none")
	if err := behind.stop(); err != nil {
		t.Fatal(err)
	}
	rs.insert(t, c.leader, "while-one-down")
	for _, m := range others(c.ms, behind) {
		waitRows(t, m, rs, "level=none")
	}
	c.stopAll()
	for _, m := range c.ms {
		m.raftAddr = testport.Addr(t)
	}
	writePeers(t, c.ms)
	startTogether(t, c.ms)
	for _, m := range c.ms {
		m.waitReady(clusterTimeout)
	}
	leader := c.byID(c.waitMembers(c.ms, c.ids(), nil))
	rs.insert(t, leader, "after")
	for _, m := range c.ms {
		waitRows(t, m, rs, "level=none")
	}
	wantPeersUsed(t, c.ms)
	if !behind.logContains(behind.logs[len(behind.logs)-1], "recovered behind other listed voters") {
		t.Errorf("%s did not report recovering behind the others", behind.id)
	}
}
