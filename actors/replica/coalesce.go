package replica

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lni/dragonboat/v4"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	"github.com/skiffdb/skiff/actors"
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

// writeReq is one write for the proposer: ctx is its writer's (the batch
// skips writers that gave up and lives as long as the most patient one).
type writeReq struct {
	ctx context.Context
	req *cmdpb.Request
}

type writeEnv = actors.Envelope[writeReq, *cmdpb.Response]

// proposeBatchFunc proposes a batch and answers each of its envelopes.
type proposeBatchFunc func(ctx context.Context, batch []writeEnv)

// proposer is the write batcher actor: it owns the batch being formed and
// the batch in flight. It takes the first waiting write and every other
// one already waiting (within the batch bounds), proposes them, and waits
// for the batch up to proposalStall; past that the batch finishes on a
// goroutine of its own, which Run waits for before it returns.
//
// One batch in flight is classic group commit: while a batch commits,
// every write arriving waits and goes in the next. More batches in flight
// split the waiting writes into smaller ones, each costing its fsyncs,
// messages and wake-ups on every node, and measured slower. A batch stuck
// across a leader change is proposed again to the new leader (propose.go)
// and holds the writes behind it for proposalStall at most.
type proposer struct {
	inbox   chan writeEnv
	propose proposeBatchFunc
	log     *zap.Logger
	done    *actors.Done
	// hold and busy regather a batch's writers (next): after a batch of
	// at least busy writes, the next one waits, at most hold after that
	// batch was answered, for as many writes as that batch carried plus
	// those that arrived while it was in flight. 0 or less: no hold.
	hold time.Duration
	busy int
	// writers is how many writers are inside submit, and peak the most
	// there were since the last batch was answered: at its answer, that
	// batch's writers and those that arrived meanwhile. A writer counts
	// once however fast it comes back, so peak never exceeds the writers
	// there are (the length of inbox would count a fast one twice).
	writers, peak atomic.Int64
	// carry is the write that did not fit the last batch.
	carry *writeEnv
}

func newProposer(propose proposeBatchFunc, hold time.Duration, busy int, log *zap.Logger) *proposer {
	return &proposer{inbox: make(chan writeEnv, writeQueueSize), propose: propose, hold: hold, busy: busy, log: log, done: actors.NewDone()}
}

// lastBatch is what the proposer's regather knows of the batch before.
type lastBatch struct {
	// want is how many writes the next batch waits for (0: none).
	want     int
	answered time.Time
}

// submit hands req to the proposer and waits for its result (ctx must have
// a deadline: withDeadline). mapErr names a context's end as Dragonboat's
// calls do; a stopped proposer is ErrStopped.
func (p *proposer) submit(ctx context.Context, req *cmdpb.Request, mapErr func(error) error) (*cmdpb.Response, error) {
	for n := p.writers.Add(1); ; {
		pk := p.peak.Load()
		if n <= pk || p.peak.CompareAndSwap(pk, n) {
			break
		}
	}
	defer p.writers.Add(-1)
	resp, err := actors.Call(ctx, p.done.C(), p.inbox, writeReq{ctx: ctx, req: req})
	switch {
	case errors.Is(err, actors.ErrCanceled):
		// The write may still be applied, as a proposal that timed out
		// may (mapErr: a timeout).
		return nil, mapErr(ctx.Err())
	case errors.Is(err, actors.ErrStopped):
		return nil, ErrStopped
	}
	return resp, err
}

// Run proposes batches until ctx ends, then waits for those in flight
// (ctx's end cancels them).
func (p *proposer) Run(ctx context.Context) error {
	defer p.done.Close()
	var inFlight sync.WaitGroup
	defer inFlight.Wait()
	stall := time.NewTimer(proposalStall)
	defer stall.Stop()
	var last lastBatch
	for {
		batch, ok := p.next(ctx, last)
		if !ok {
			return nil
		}
		done := make(chan struct{})
		inFlight.Add(1)
		go func() {
			defer inFlight.Done()
			defer close(done)
			p.propose(ctx, batch)
		}()
		// Since Go 1.23 a Reset timer never delivers a stale tick.
		stall.Reset(proposalStall)
		last = lastBatch{}
		select {
		case <-done:
			// Its writers come back in a closed loop; the writes that
			// arrived while it was in flight are others.
			want := int(p.peak.Swap(p.writers.Load()))
			if p.hold > 0 && len(batch) >= p.busy {
				last = lastBatch{want: min(maxBatchWrites, want), answered: time.Now()}
			}
		case <-stall.C:
			p.log.Warn("a write batch is slow to commit; proposing the next without it",
				zap.Int("writes", len(batch)), zap.Duration("waited", proposalStall))
		}
	}
}

// next forms the next batch: the first write to arrive and every one
// already waiting, within the bounds, and after a busy batch those that
// arrive until last.want are there or hold has passed since it was
// answered; false when ctx ended first.
//
// The regather is group commit's other half: without it a closed loop of
// W writers splits into two groups of about W/2, each proposed while the
// other's writers are away, and an open loop sends batches back to back
// however few writes each carries. Every batch costs each node fsyncs,
// messages and wake-ups (README, Benchmarks, "Write batches wait for
// their writers").
func (p *proposer) next(ctx context.Context, last lastBatch) ([]writeEnv, bool) {
	var first writeEnv
	if p.carry != nil {
		first, p.carry = *p.carry, nil
	} else {
		select {
		case first = <-p.inbox:
		case <-ctx.Done():
			return nil, false
		}
	}
	batch := make([]writeEnv, 1, 16)
	batch[0] = first
	size := proto.Size(first.Req.req)
	for len(batch) < maxBatchWrites {
		select {
		case env := <-p.inbox:
			if !p.add(&batch, &size, env) {
				return batch, true
			}
		default:
			if len(batch) >= last.want {
				return batch, true
			}
			return p.regather(ctx, batch, size, last)
		}
	}
	return batch, true
}

// add appends env to batch unless that would take it past maxBatchBytes;
// then env is carried to the next batch (each write fits alone; the batch
// must too) and add reports false: the batch is full.
func (p *proposer) add(batch *[]writeEnv, size *int, env writeEnv) bool {
	n := proto.Size(env.Req.req)
	if *size+n > maxBatchBytes {
		p.carry = &env
		return false
	}
	*batch = append(*batch, env)
	*size += n
	return true
}

// regather adds to batch the writes that arrive until last.want are in
// it, hold has passed since the last batch was answered, or ctx ends.
func (p *proposer) regather(ctx context.Context, batch []writeEnv, size int, last lastBatch) ([]writeEnv, bool) {
	wait := time.Until(last.answered.Add(p.hold))
	if wait <= 0 {
		return batch, true
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	for len(batch) < last.want {
		select {
		case env := <-p.inbox:
			if !p.add(&batch, &size, env) {
				return batch, true
			}
		case <-t.C:
			return batch, true
		case <-ctx.Done():
			// The batch formed so far is proposed; Run ends after it.
			return batch, true
		}
	}
	return batch, true
}

// proposeBatch proposes the writes still wanted, alone or as one BATCH
// entry, and answers each.
func (r *Replica) proposeBatch(ctx context.Context, nh *dragonboat.NodeHost, batch []writeEnv) {
	var err error // the batch's outcome, observed when it returns
	live := batch[:0]
	var deadline time.Time
	for _, pw := range batch {
		if pw.Req.ctx.Err() != nil {
			continue // its writer has given up; nothing was proposed
		}
		if d, ok := pw.Req.ctx.Deadline(); ok && d.After(deadline) {
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
		resp, err = r.propose(bctx, nh, cmdpb.Command_TYPE_EXECUTE, live[0].Req.req)
		live[0].Answer(resp, err)
		return
	}
	cmd := &cmdpb.Command{Type: cmdpb.Command_TYPE_BATCH, Batch: make([]*cmdpb.Command, len(live))}
	for i, pw := range live {
		cmd.Batch[i] = &cmdpb.Command{Version: sm.CommandVersion, Type: cmdpb.Command_TYPE_EXECUTE, Request: pw.Req.req}
	}
	var resp *cmdpb.Response
	resp, err = r.proposeCommand(bctx, nh, cmd)
	if err == nil && len(resp.GetBatch()) != len(live) {
		if resp.GetError() != "" {
			// Refused whole (an unknown command version): each write
			// answers with that error.
			for _, pw := range live {
				pw.Answer(&cmdpb.Response{Error: resp.GetError(), RaftIndex: resp.GetRaftIndex()}, nil)
			}
			return
		}
		err = fmt.Errorf("%w: a batch of %d writes answered %d results", ErrNotReady, len(live), len(resp.GetBatch()))
	}
	for i, pw := range live {
		if err != nil {
			pw.Answer(nil, err)
			continue
		}
		pw.Answer(resp.Batch[i], nil)
	}
}
