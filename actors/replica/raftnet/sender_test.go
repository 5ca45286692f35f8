package raftnet

import (
	"errors"
	"net"
	"os"
	"testing"
	"time"

	"github.com/lni/dragonboat/v4/raftio"
	pb "github.com/lni/dragonboat/v4/raftpb"
)

// sendBatch sends one message batch from source, claiming to be replica
// from of shard 1, on a new connection to addr, and reports whether the
// node dropped the connection.
func sendBatch(t *testing.T, addr, source string, from uint64) (dropped bool) {
	t.Helper()
	b := pb.MessageBatch{DeploymentId: 1, BinVer: raftio.TransportBinVersion, SourceAddress: source,
		Requests: []pb.Message{{ShardID: 1, From: from, To: 1, Type: pb.Heartbeat}}}
	body, err := b.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	frame := make([]byte, frameHead+len(body))
	copy(frame[frameHead:], body)
	putFrame(frame, methodRaft)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := writeFrame(c, frame); err != nil {
		t.Fatal(err)
	}
	// A kept connection stays silent past the deadline; a dropped one
	// ends at once.
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	_, err = c.Read(make([]byte, 1))
	return !errors.Is(err, os.ErrDeadlineExceeded)
}

// One frame naming its sender wrongly reaches the Raft port of a node
// without node-to-node TLS: Dragonboat would panic on it (an address that
// is not host:port; an address other than the one it holds for that
// sender). The node drops that connection and goes on.
func TestBadSenderAddressDropsOnlyItsConnection(t *testing.T) {
	addr := freeAddrs(t, 1)[1]
	startHost(t, addr, listening)
	if sendBatch(t, addr, "127.0.0.1:7001", 7) {
		t.Fatal("a batch from a well-formed new sender was refused")
	}
	for _, tc := range []struct {
		name, source string
	}{
		{"not host:port", "not an address!!"},
		{"another address for a known sender", "127.0.0.1:7002"},
	} {
		if !sendBatch(t, addr, tc.source, 7) {
			t.Fatalf("%s: the connection was kept", tc.name)
		}
	}
	if sendBatch(t, addr, "127.0.0.1:7001", 7) {
		t.Fatal("the node no longer takes batches from its known sender")
	}
}
