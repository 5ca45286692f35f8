package raftnet

import (
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	pb "github.com/lni/dragonboat/v4/raftpb"
)

// A send on a connection the peer reset (a killed node) redials it and
// delivers the batch on the new connection (a restarted node), so
// Dragonboat never sees the failure and never opens its circuit breaker;
// a peer still down after the redial window gets the original error.
func TestSendRedialsAResetPeer(t *testing.T) {
	dead, other := net.Pipe()
	_ = other.Close() // writes to dead now fail
	batch := pb.MessageBatch{Requests: []pb.Message{{Type: pb.Heartbeat, To: 2, From: 1, ShardID: 1}}}

	t.Run("the peer is back", func(t *testing.T) {
		back, peer := net.Pipe()
		defer back.Close()
		got := make(chan []byte, 1)
		go func() {
			b := make([]byte, 4096)
			n, _ := peer.Read(b)
			got <- b[:n]
		}()
		attempts := 0
		m := &msgConn{c: dead, ctx: context.Background(), redial: func(time.Time) (net.Conn, error) {
			if attempts++; attempts < 3 {
				return nil, errors.New("connection refused") // not listening yet
			}
			return back, nil
		}}
		if err := m.SendMessageBatch(batch); err != nil {
			t.Fatalf("SendMessageBatch = %v", err)
		}
		f := <-got
		if len(f) <= frameHead {
			t.Fatalf("the new connection got %d bytes", len(f))
		}
		if m.c != back {
			t.Fatal("the new connection is not kept for the next batch")
		}
	})
	t.Run("the peer stays down", func(t *testing.T) {
		m := &msgConn{c: dead, ctx: context.Background(), redial: func(time.Time) (net.Conn, error) {
			return nil, errors.New("connection refused")
		}}
		if err := m.SendMessageBatch(batch); !errors.Is(err, io.ErrClosedPipe) {
			t.Fatalf("SendMessageBatch = %v, want the original error", err)
		}
	})
}
