package raftnet

import (
	"net"
	"testing"
	"time"

	"github.com/lni/dragonboat/v4/config"
	pb "github.com/lni/dragonboat/v4/raftpb"
)

// Connections handed over by the mux reach the running transport, and only
// it: before Start and after Close, Serve declines (the mux closes the
// connection and the peer retries), and Close cuts the connections it
// serves.
func TestInboundServesOnlyTheRunningTransport(t *testing.T) {
	in := &Inbound{}
	f, err := NewFactory(Config{Inbound: in})
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan pb.MessageBatch, 1)
	tr := f.Create(config.NodeHostConfig{RaftAddress: "127.0.0.1:1"},
		func(b pb.MessageBatch) { got <- b }, func(pb.Chunk) bool { return true })

	a, b := net.Pipe()
	defer a.Close()
	if in.Serve(b) {
		t.Fatal("Serve accepted a connection before the transport started")
	}
	if err := tr.Start(); err != nil {
		t.Fatal(err)
	}
	served := make(chan bool, 1)
	go func() { served <- in.Serve(b) }()

	// What a peer's msgConn writes arrives whole.
	out := &msgConn{c: a, buf: make([]byte, frameHead+sendBufSize)}
	sent := pb.MessageBatch{SourceAddress: "127.0.0.1:2", Requests: []pb.Message{{Type: pb.Heartbeat, From: 2, To: 1, ShardID: 1, Term: 3}}}
	if err := out.SendMessageBatch(sent); err != nil {
		t.Fatal(err)
	}
	select {
	case b := <-got:
		if b.SourceAddress != sent.SourceAddress || len(b.Requests) != 1 || b.Requests[0].Term != 3 {
			t.Fatalf("received %+v", b)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the batch never reached the handler")
	}

	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case ok := <-served:
		if !ok {
			t.Fatal("Serve reported it did not serve")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not cut the served connection")
	}
	c, d := net.Pipe()
	defer c.Close()
	defer d.Close()
	if in.Serve(d) {
		t.Fatal("Serve accepted a connection after Close")
	}
	// Another transport (a NodeHost started again) may attach.
	tr2 := f.Create(config.NodeHostConfig{}, func(pb.MessageBatch) {}, func(pb.Chunk) bool { return true })
	if err := tr2.Start(); err != nil {
		t.Fatal(err)
	}
	if err := f.Create(config.NodeHostConfig{}, nil, nil).Start(); err == nil {
		t.Fatal("a second transport attached to a busy inbound")
	}
	_ = tr2.Close()
}
