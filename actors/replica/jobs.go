package replica

import (
	"context"
	"time"

	"github.com/skiffdb/skiff/actors/lifecycle"
)

// startJobs starts the replica's periodic jobs in g, each a goroutine of
// its own that runs one round at a time, started with the NodeHost and
// stopped first at shutdown (stop).
func (r *Replica) startJobs(g *group, run *running) {
	nh := run.nh
	// A replica that applied its own removal stops taking part; the
	// listener's nudge is kept if it came during start (a replayed
	// snapshot that lists this replica as removed).
	g.goRun(func(ctx context.Context) {
		select {
		case <-r.lis.removed:
			r.stopAsRemoved(nh, "it applied its own removal")
		case <-ctx.Done():
		}
	})
	// A node waiting to become ready checks whether it has caught up.
	r.every(g, probeInterval, nil, func() {
		if r.needsProbe() {
			r.probe(nh)
		}
	})
	// Membership is re-read on every change Dragonboat reports and every
	// refreshInterval besides, which also retries self-registration.
	r.every(g, refreshInterval, r.lis.members, func() { r.refreshMembers(nh) })
	// A follower confirms contact with the leader (freshness, API.md 1.8).
	r.every(g, contactInterval, nil, func() {
		if r.needsContact() {
			r.checkContact(nh)
		}
	})
	// A recovering node reports what it is catching up to (lifecycle
	// turns it into rates and an ETA).
	r.every(g, progressInterval, nil, func() {
		if r.life.State().Phase == lifecycle.Recovering {
			r.reportProgress(nh)
		}
	})
	// The monitoring numbers, sampled at once when the listener or a
	// request says one moved (stats.go).
	r.every(g, statsInterval, r.lis.stats, func() { r.sampleStats(nh) })
	// A node cut off from its leader asks its peers whether it was
	// removed (removed.go).
	r.every(g, removalCheckInterval, nil, func() {
		if r.needsRemovalCheck() {
			r.checkRemoved(r.jobsCtx, nh)
		}
	})
	if r.reapEnabled() {
		// The leader reaps unreachable members (reap.go).
		var leaderSince time.Time // this job's own
		r.every(g, reapInterval, nil, func() { r.reapJob(run, &leaderSince) })
	}
	if r.cfg.AutoVacuumInterval > 0 {
		// The leader VACUUMs through the log (vacuum.go).
		var since time.Time // this job's own
		r.every(g, vacuumCheckInterval(r.cfg.AutoVacuumInterval), nil, func() { r.vacuumJob(run, &since) })
	}
	if r.snapJobEnabled() {
		// Every node checks its SQLite WAL's size (snapjob.go).
		r.every(g, r.cfg.SnapshotInterval, nil, func() { r.snapJob(nh) })
	}
}

// every runs round every interval, and at once when nudge (which may be
// nil) fires, until g stops; a round that overruns delays the next rather
// than overlapping it.
func (r *Replica) every(g *group, interval time.Duration, nudge <-chan struct{}, round func()) {
	g.goRun(func(ctx context.Context) {
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			case <-nudge:
			}
			round()
		}
	})
}
