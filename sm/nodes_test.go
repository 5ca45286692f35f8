package sm

import (
	"fmt"
	"sync"
	"testing"

	dbsm "github.com/lni/dragonboat/v4/statemachine"
	"google.golang.org/protobuf/proto"

	"github.com/skiffdb/skiff/sm/cmdpb"
)

func nodeCmd(m *cmdpb.NodeMeta) []byte {
	b, _ := proto.Marshal(&cmdpb.Command{Version: CommandVersion, RequestId: []byte(fmt.Sprint("node-", m.ReplicaId, m.NodeId, m.Remove)),
		Type: cmdpb.Command_TYPE_NODE, Node: m})
	return b
}

// The node table is replicated state: NODE entries upsert and delete rows,
// a node ID names one replica at a time, and every change (and every open)
// is published whole.
func TestNodeTable(t *testing.T) {
	dir := t.TempDir()
	var mu sync.Mutex
	var last []NodeInfo
	notify := func(e Event) {
		if e.Kind == EventNodes {
			mu.Lock()
			last = e.Nodes
			mu.Unlock()
		}
	}
	s, err := New(Config{Dir: dir, ReadConns: 1, Notify: notify})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Open(make(chan struct{})); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	published := func() string {
		mu.Lock()
		defer mu.Unlock()
		return fmt.Sprint(last)
	}
	idx := uint64(1)
	apply := func(cmds ...[]byte) {
		ents := make([]dbsm.Entry, len(cmds))
		for i, c := range cmds {
			ents[i] = dbsm.Entry{Index: idx, Cmd: c}
			idx++
		}
		if _, err := s.Update(ents); err != nil {
			t.Fatal(err)
		}
	}
	apply(nodeCmd(&cmdpb.NodeMeta{ReplicaId: 1, NodeId: "n1", RaftAddr: "h:2", ApiAddr: "h:1", Voter: true}),
		nodeCmd(&cmdpb.NodeMeta{ReplicaId: 5, NodeId: "n2", RaftAddr: "h:12", ApiAddr: "h:11"}))
	if got, want := published(), "[{1 n1 h:2 h:1 true} {5 n2 h:12 h:11 false}]"; got != want {
		t.Fatalf("after adds: %s, want %s", got, want)
	}
	// n2 re-joins under a new replica ID; then n1 is removed.
	apply(nodeCmd(&cmdpb.NodeMeta{ReplicaId: 9, NodeId: "n2", RaftAddr: "h:12", ApiAddr: "h:11", Voter: true}),
		nodeCmd(&cmdpb.NodeMeta{ReplicaId: 1, Remove: true}))
	if got, want := published(), "[{9 n2 h:12 h:11 true}]"; got != want {
		t.Fatalf("after re-join and remove: %s, want %s", got, want)
	}
	_ = s.Close()
	mu.Lock()
	last = nil
	mu.Unlock()
	s2, err := New(Config{Dir: dir, ReadConns: 1, Notify: notify})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s2.Open(make(chan struct{})); err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if got, want := published(), "[{9 n2 h:12 h:11 true}]"; got != want {
		t.Fatalf("after reopen: %s, want %s", got, want)
	}
}
