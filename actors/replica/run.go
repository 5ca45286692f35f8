package replica

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/lni/dragonboat/v4"
	"go.uber.org/zap"

	"github.com/skiffdb/skiff/actors/lifecycle"
)

// running is what Run starts with the NodeHost and the handle leases: the
// NodeHost and the actors that own the replica's ordered work.
type running struct {
	nh *dragonboat.NodeHost
	// writes batches writes (coalesce.go), reads shares ReadIndex rounds
	// (readindex.go), members runs membership changes one at a time
	// (members.go).
	writes  *proposer
	reads   *readRounds
	members *memberChanges
}

// group runs goroutines that stop together: stop cancels their context
// and waits for them.
type group struct {
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func newGroup(parent context.Context) *group {
	g := &group{}
	g.ctx, g.cancel = context.WithCancel(parent)
	return g
}

func (g *group) goRun(f func(ctx context.Context)) {
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		f(g.ctx)
	}()
}

func (g *group) stop() {
	g.cancel()
	g.wg.Wait()
}

// Run starts the NodeHost, the replica's actors and its periodic jobs,
// lends them to the handle until ctx ends, then shuts down (stop).
func (r *Replica) Run(ctx context.Context) error {
	defer r.done.Close()
	if r.life == nil {
		return fmt.Errorf("%w: Run before Configure", ErrInvalidConfig)
	}
	defer r.cancelWork()
	type started struct {
		nh  *dragonboat.NodeHost
		err error
	}
	startC := make(chan started, 1)
	go func() {
		nh, err := r.start()
		startC <- started{nh, err}
	}()
	var s started
	select {
	case s = <-startC:
	case <-ctx.Done():
		// NewNodeHost is still running; it must finish before what it
		// opened can be closed. Raft never served: nothing to leave.
		r.hot.close()
		if s = <-startC; s.err == nil {
			r.closeNodeHost(s.nh)
		}
		return nil
	}
	if s.err != nil {
		r.hot.close()
		r.life.Notify(lifecycle.Failed{Err: s.err.Error()})
		return s.err
	}
	run, acts, jobs := r.begin(s.nh)
	<-ctx.Done()
	r.stop(run, acts, jobs)
	return nil
}

// begin starts the actors and the periodic jobs on nh and opens the lease.
func (r *Replica) begin(nh *dragonboat.NodeHost) (*running, *group, *group) {
	timeout := readRoundTimeout(r.cfg.RTT)
	confirm := func(ctx context.Context) error { return confirmReadIndex(ctx, nh, r.cfg.ShardID, timeout) }
	if o := r.cfg.Observer; o != nil {
		plain := confirm
		confirm = func(ctx context.Context) error {
			t0 := time.Now()
			err := plain(ctx)
			o.ReadRound(time.Since(t0), err)
			return err
		}
	}
	// A round ends within its timeout (a tick or two later, as Dragonboat
	// times requests out on ticks); a read waits for at most the round in
	// flight, the hold and its own round. Three timeouts leave room.
	bound := 3*timeout + max(r.cfg.ReadRoundHold, 0)
	run := &running{nh: nh, reads: newReadRounds(confirm, r.cfg.ReadRoundHold, readRoundGather, readRoundBusy, bound)}
	run.writes = newProposer(func(ctx context.Context, b []writeEnv) { r.proposeBatch(ctx, nh, b) }, r.cfg.WriteBatchHold, writeBatchBusy, r.log)
	run.members = newMemberChanges(func(ctx context.Context, req MemberReq) error { return r.serveMember(ctx, nh, req) })
	// The actors end with workCtx: a request still waiting on one when
	// shutdown cancels the work ends then (stop).
	acts := newGroup(r.workCtx)
	for _, a := range []interface{ Run(context.Context) error }{run.writes, run.reads, run.members} {
		acts.goRun(func(ctx context.Context) { _ = a.Run(ctx) })
	}
	jobs := &group{ctx: r.jobsCtx, cancel: r.stopJobs}
	r.startJobs(jobs, run)
	r.hot.open(run)
	return run, acts, jobs
}

// stop is the replica's shutdown, the one place its order is written:
//  1. The periodic jobs stop, and are waited for: none may start a round
//     (a promotion, a reap, a catch-up) against a node that is leaving.
//  2. Leave the cluster as configured (hand leadership over, remove this
//     node), while Raft and the actors still run: the removal goes through
//     the membership actor, after any change already queued.
//  3. Refuse new requests, and wait for those in flight (the lease) for a
//     grace period, then cancel them: they use the NodeHost and actors.
//     Cancelling ends the actors' contexts and aborts the state machine's
//     reads, which are not tied to workCtx one by one (query).
//  4. Stop the actors: no request can reach them any more; their queued
//     and in-flight work ends with ErrStopped or Dragonboat's error.
//  5. Close the NodeHost: it closes the state machine (checkpointing
//     SQLite's WAL), then the LogDB. Nothing uses it any more.
func (r *Replica) stop(run *running, acts, jobs *group) {
	jobs.stop()
	r.leave(run)
	r.hot.refuse()
	drained := make(chan struct{})
	go func() { r.hot.close(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(shutdownGrace):
		r.log.Warn("cancelling in-flight requests at shutdown", zap.Duration("grace", shutdownGrace))
		r.cancelWork()
		if m := r.machine.Load(); m != nil {
			m.AbortReads()
		}
		<-drained
	}
	r.cancelWork()
	acts.stop()
	r.closeNodeHost(run.nh)
}

func (r *Replica) closeNodeHost(nh *dragonboat.NodeHost) {
	nh.Close()
	r.tap.Close() // after the transport: no chunk can reach it any more
	r.log.Info("raft stopped")
}
