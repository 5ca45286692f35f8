package raftnet

import (
	"net"
	"sync"
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
	out := &msgConn{c: a}
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

// Connections handed over while the transport closes and another starts
// (a NodeHost restarted on the same port) are each served or declined,
// never lost: every Serve returns, and every connection ends closed.
func TestInboundServeRacesClose(t *testing.T) {
	in := &Inbound{}
	f, err := NewFactory(Config{Inbound: in})
	if err != nil {
		t.Fatal(err)
	}
	for range 30 {
		tr := f.Create(config.NodeHostConfig{}, func(pb.MessageBatch) {}, func(pb.Chunk) bool { return true })
		if err := tr.Start(); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		peers := make([]net.Conn, 8)
		for i := range peers {
			a, b := net.Pipe()
			peers[i] = a
			wg.Add(1)
			go func() {
				defer wg.Done()
				if !in.Serve(b) {
					b.Close() // as the mux does
				}
			}()
		}
		if err := tr.Close(); err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("a Serve did not return after Close")
		}
		for _, a := range peers {
			_ = a.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, err := a.Read(make([]byte, 1)); err == nil {
				t.Fatal("a connection got bytes instead of being closed")
			} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Fatal("a connection was left open after Close")
			}
			a.Close()
		}
	}
}
