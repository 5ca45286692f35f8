package raftnet

import (
	"sync"
	"sync/atomic"
	"time"

	pb "github.com/lni/dragonboat/v4/raftpb"
)

// Heard records when each replica last sent this node a message only a
// leader sends (a heartbeat, or log entries to replicate). It is how a
// follower knows when it last heard from its leader, as hashicorp/raft's
// LastContact does for rqlite: Dragonboat does not expose it, and asking
// the leader with a ReadIndex round instead costs a round trip and can
// wait out its timeout when one message is lost.
//
// Times are kept on the monotonic clock (as offsets from the record's
// creation), so a step of the wall clock cannot make an old contact look
// recent. Safe for concurrent use.
type Heard struct {
	base time.Time
	m    sync.Map // heardKey -> *atomic.Int64 (nanoseconds since base)
}

type heardKey struct{ shard, replica uint64 }

// NewHeard returns an empty record.
func NewHeard() *Heard { return &Heard{base: time.Now()} }

// Last returns when replica of shard last sent a leader's message, and
// false if it never did.
func (h *Heard) Last(shard, replica uint64) (time.Time, bool) {
	v, ok := h.m.Load(heardKey{shard, replica})
	if !ok {
		return time.Time{}, false
	}
	return h.base.Add(time.Duration(v.(*atomic.Int64).Load())), true
}

// observe records the leaders' messages of a batch Dragonboat accepted,
// at now. A batch comes from one node; one time read serves it whole.
func (h *Heard) observe(b *pb.MessageBatch, now func() time.Time) {
	var (
		last  heardKey
		at    int64
		found bool
	)
	for i := range b.Requests {
		m := &b.Requests[i]
		if m.Type != pb.Heartbeat && m.Type != pb.Replicate {
			continue
		}
		k := heardKey{m.ShardID, m.From}
		if found && k == last {
			continue
		}
		if !found {
			at = int64(now().Sub(h.base))
		}
		last, found = k, true
		if v, ok := h.m.Load(k); ok {
			v.(*atomic.Int64).Store(at)
			continue
		}
		v := new(atomic.Int64)
		v.Store(at)
		if prev, loaded := h.m.LoadOrStore(k, v); loaded {
			prev.(*atomic.Int64).Store(at)
		}
	}
}
