package replica

import (
	"context"
	"fmt"
	"time"

	"github.com/lni/dragonboat/v4"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	"github.com/skiffdb/skiff/sm"
	"github.com/skiffdb/skiff/sm/cmdpb"
)

// Writes are coalesced into BATCH entries (group commit at the log): a
// proposer takes the writes that queued while its last batch was in
// flight and proposes them as one entry, which the state machine applies
// as that many requests, each answering alone (sm.applyBatchCommand).
// Per entry, Raft, the log store, the transport and the apply loop cost
// the same whether it carries one write or a hundred; at 64 concurrent
// writers that cost was most of a write's CPU on every node.
const (
	// writeProposers bounds the batches in flight. One is classic group
	// commit: while a batch commits, every write arriving waits and goes
	// in the next. More split the waiting writes into smaller batches,
	// and on this 2-core machine each batch's fsyncs, messages and
	// wake-ups cost kernel time on every node: inserts at 64 workers
	// measured 5,810 req/s with 1, 5,475 with 2, 5,230 with 4 and 5,210
	// with 8 (two rounds each, fresh 3-node clusters), and later 1 beat 2
	// in 6 of 7 alternating rounds (median 5,618 against 5,384 in four
	// of them), with the open loop's p99 unchanged. A batch stuck across
	// a leader change is proposed again to the new leader (propose.go)
	// and holds the writes behind it for proposalStall at most; none can
	// commit without a leader anyway.
	writeProposers = 1
	// maxBatchWrites and maxBatchBytes bound one batch (the bytes are the
	// encoded requests'; Dragonboat refuses entries near its in-memory log
	// limit, and a big entry delays the heartbeats behind it).
	maxBatchWrites = 256
	maxBatchBytes  = 1 << 20
	// writeQueueSize is how many writes may wait for a proposer; a writer
	// finding it full waits, within its deadline.
	writeQueueSize = 1024
	// proposalStall is how long a proposer waits for its batch before it
	// leaves the batch to finish on its own goroutine and takes the next
	// one. A batch commits in milliseconds; one stuck across a leader
	// change (until a new leader is known and takes it again) must not
	// hold every later write behind it.
	proposalStall = 500 * time.Millisecond
)

type pendingWrite struct {
	ctx  context.Context
	req  *cmdpb.Request
	done chan pendingResult // capacity 1: the proposer never blocks on it
}

type pendingResult struct {
	resp *cmdpb.Response
	err  error
}

// submitWrite hands req to the proposers and waits for its result. ctx
// must have a deadline (withDeadline).
func (r *Replica) submitWrite(ctx context.Context, nh *dragonboat.NodeHost, req *cmdpb.Request) (*cmdpb.Response, error) {
	pw := &pendingWrite{ctx: ctx, req: req, done: make(chan pendingResult, 1)}
	select {
	case r.writeC <- pw:
	case <-ctx.Done():
		return nil, r.mapErr(nh, ctx.Err())
	}
	select {
	case res := <-pw.done:
		return res.resp, res.err
	case <-ctx.Done():
		// The write may still be applied, as a proposal that timed out
		// may (mapErr: a timeout).
		return nil, r.mapErr(nh, ctx.Err())
	}
}

// proposeWrites is one proposer: it takes the first waiting write, every
// other one already waiting (within the batch bounds), and proposes them,
// until ctx ends. It waits for the batch's result up to proposalStall;
// past that the batch finishes on its own goroutine (counted in r.loops,
// which shutdown waits for after cancelling ctx).
func (r *Replica) proposeWrites(ctx context.Context, propose func(context.Context, []*pendingWrite)) {
	var carry *pendingWrite // the write that did not fit the last batch
	stall := time.NewTimer(proposalStall)
	defer stall.Stop()
	for {
		first := carry
		carry = nil
		if first == nil {
			select {
			case first = <-r.writeC:
			case <-ctx.Done():
				return
			}
		}
		batch := make([]*pendingWrite, 1, 16)
		batch[0] = first
		size := proto.Size(first.req)
	drain:
		for len(batch) < maxBatchWrites {
			select {
			case pw := <-r.writeC:
				n := proto.Size(pw.req)
				if size+n > maxBatchBytes {
					carry = pw // each write fits alone; the batch must too
					break drain
				}
				batch = append(batch, pw)
				size += n
			default:
				break drain
			}
		}
		done := make(chan struct{})
		r.loops.Add(1)
		go func() {
			defer r.loops.Done()
			defer close(done)
			propose(ctx, batch)
		}()
		// Since Go 1.23 a Reset timer never delivers a stale tick.
		stall.Reset(proposalStall)
		select {
		case <-done:
		case <-stall.C:
			r.log.Warn("a write batch is slow to commit; proposing the next without it",
				zap.Int("writes", len(batch)), zap.Duration("waited", proposalStall))
		}
	}
}

// proposeBatch proposes the writes still wanted, alone or as one BATCH
// entry, and answers each.
func (r *Replica) proposeBatch(ctx context.Context, nh *dragonboat.NodeHost, batch []*pendingWrite) {
	var err error // the batch's outcome, observed when it returns
	live := batch[:0]
	var deadline time.Time
	for _, pw := range batch {
		if pw.ctx.Err() != nil {
			continue // its writer has given up; nothing was proposed
		}
		if d, ok := pw.ctx.Deadline(); ok && d.After(deadline) {
			deadline = d
		}
		live = append(live, pw)
	}
	if len(live) == 0 {
		return
	}
	if deadline.IsZero() {
		deadline = time.Now().Add(r.cfg.ApplyTimeout)
	}
	// The batch lives as long as its most patient writer; shutdown's
	// cancel of ctx ends it.
	bctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	if o := r.cfg.Observer; o != nil {
		t0 := time.Now()
		defer func() { o.Proposed(time.Since(t0), len(live), err) }()
	}
	if len(live) == 1 {
		var resp *cmdpb.Response
		resp, err = r.propose(bctx, nh, cmdpb.Command_TYPE_EXECUTE, live[0].req)
		live[0].done <- pendingResult{resp, err}
		return
	}
	cmd := &cmdpb.Command{Type: cmdpb.Command_TYPE_BATCH, Batch: make([]*cmdpb.Command, len(live))}
	for i, pw := range live {
		cmd.Batch[i] = &cmdpb.Command{Version: sm.CommandVersion, Type: cmdpb.Command_TYPE_EXECUTE, Request: pw.req}
	}
	var resp *cmdpb.Response
	resp, err = r.proposeCommand(bctx, nh, cmd)
	if err == nil && len(resp.GetBatch()) != len(live) {
		if resp.GetError() != "" {
			// Refused whole (an unknown command version): each write
			// answers with that error.
			for _, pw := range live {
				pw.done <- pendingResult{&cmdpb.Response{Error: resp.GetError(), RaftIndex: resp.GetRaftIndex()}, nil}
			}
			return
		}
		err = fmt.Errorf("%w: a batch of %d writes answered %d results", ErrNotReady, len(live), len(resp.GetBatch()))
	}
	for i, pw := range live {
		if err != nil {
			pw.done <- pendingResult{nil, err}
			continue
		}
		pw.done <- pendingResult{resp.Batch[i], nil}
	}
}
