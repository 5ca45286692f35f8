package raftnet

import (
	"strings"
	"testing"
	"time"

	pb "github.com/lni/dragonboat/v4/raftpb"
)

// TestHeard: only the messages a leader sends are contact, recorded per
// shard and sender at the batch's time.
func TestHeard(t *testing.T) {
	t0 := time.Unix(1000, 0)
	batch := func(ms ...pb.Message) *pb.MessageBatch { return &pb.MessageBatch{Requests: ms} }
	msg := func(typ pb.MessageType, shard, from uint64) pb.Message {
		return pb.Message{Type: typ, ShardID: shard, From: from}
	}
	type seen struct {
		shard, from uint64
		at          time.Time // zero: never heard
	}
	cases := []struct {
		name  string
		batch *pb.MessageBatch
		want  []seen
	}{
		{"heartbeat", batch(msg(pb.Heartbeat, 1, 2)), []seen{{1, 2, t0}, {1, 3, time.Time{}}}},
		{"entries to replicate", batch(msg(pb.Replicate, 1, 2)), []seen{{1, 2, t0}}},
		{"a follower's answers are not contact", batch(msg(pb.HeartbeatResp, 1, 3), msg(pb.ReplicateResp, 1, 3),
			msg(pb.RequestVote, 1, 3), msg(pb.ReadIndex, 1, 3)), []seen{{1, 3, time.Time{}}}},
		{"per shard and sender", batch(msg(pb.Heartbeat, 1, 2), msg(pb.Heartbeat, 1, 2), msg(pb.Replicate, 7, 3)),
			[]seen{{1, 2, t0}, {7, 3, t0}, {1, 3, time.Time{}}, {7, 2, time.Time{}}}},
		{"empty batch", batch(), []seen{{1, 2, time.Time{}}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := NewHeard()
			reads := 0
			h.observe(tc.batch, func() time.Time { reads++; return t0 })
			if reads > 1 {
				t.Errorf("clock read %d times for one batch", reads)
			}
			for _, w := range tc.want {
				got, ok := h.Last(w.shard, w.from)
				if ok != !w.at.IsZero() || !got.Equal(w.at) && ok {
					t.Errorf("Last(%d, %d) = %v, %v; want %v", w.shard, w.from, got, ok, w.at)
				}
			}
		})
	}
	// A later batch moves the time on.
	h := NewHeard()
	h.observe(batch(msg(pb.Heartbeat, 1, 2)), func() time.Time { return t0 })
	h.observe(batch(msg(pb.Heartbeat, 1, 2)), func() time.Time { return t0.Add(time.Second) })
	if got, _ := h.Last(1, 2); !got.Equal(t0.Add(time.Second)) {
		t.Fatalf("after a second heartbeat: %v", got)
	}
}

// BenchmarkHeardObserve: what recording contact adds to each batch a
// follower receives (a heartbeat, or a batch of entries to replicate).
func BenchmarkHeardObserve(b *testing.B) {
	h := NewHeard()
	mb := &pb.MessageBatch{Requests: []pb.Message{{Type: pb.Replicate, ShardID: 1, From: 2}}}
	b.ReportAllocs()
	for b.Loop() {
		h.observe(mb, time.Now)
	}
}

// TestHeardIsMonotonic: a contact time carries the monotonic clock, so
// freshness (time.Since) does not move with a step of the wall clock.
func TestHeardIsMonotonic(t *testing.T) {
	h := NewHeard()
	h.observe(&pb.MessageBatch{Requests: []pb.Message{{Type: pb.Heartbeat, ShardID: 1, From: 2}}}, time.Now)
	got, ok := h.Last(1, 2)
	if !ok {
		t.Fatal("not heard")
	}
	if !strings.Contains(got.String(), " m=") {
		t.Fatalf("contact time %s has no monotonic reading", got)
	}
	if d := time.Since(got); d < 0 || d > time.Minute {
		t.Fatalf("contact %s ago", d)
	}
}
