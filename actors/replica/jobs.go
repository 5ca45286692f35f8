package replica

import (
	"time"

	"github.com/lni/dragonboat/v4"

	"github.com/skiffdb/skiff/actors/lifecycle"
)

// startJobs starts the replica's periodic jobs, each a goroutine of its
// own that runs one round at a time, started with the NodeHost and ended
// by shutdown (stopJobs, then the wait for workers).
func (r *Replica) startJobs(nh *dragonboat.NodeHost) {
	// A node waiting to become ready checks whether it has caught up.
	r.every(probeInterval, nil, func() {
		if r.needsProbe() {
			r.probe(nh)
		}
	})
	// Membership is re-read on every change Dragonboat reports and every
	// refreshInterval besides, which also retries self-registration.
	r.every(refreshInterval, r.lis.members, func() { r.refreshMembers(nh) })
	// A follower confirms contact with the leader (freshness, API.md 1.8).
	r.every(contactInterval, nil, func() {
		if r.needsContact() {
			r.checkContact(nh)
		}
	})
	// A recovering node reports what it is catching up to (lifecycle
	// turns it into rates and an ETA).
	r.every(progressInterval, nil, func() {
		if r.life.State().Phase == lifecycle.Recovering {
			r.reportProgress(nh)
		}
	})
	// The monitoring numbers, sampled at once when the listener or a
	// request says one moved (stats.go).
	r.every(statsInterval, r.lis.stats, func() { r.sampleStats(nh) })
	// A node cut off from its leader asks its peers whether it was
	// removed (removed.go).
	r.every(removalCheckInterval, nil, func() {
		if r.needsRemovalCheck() {
			r.checkRemoved(nh)
		}
	})
	if r.reapEnabled() {
		// The leader reaps unreachable members (reap.go).
		var leaderSince time.Time // this job's own
		r.every(reapInterval, nil, func() { r.reapJob(nh, &leaderSince) })
	}
	if r.snapJobEnabled() {
		// Every node checks its SQLite WAL's size (snapjob.go).
		r.every(r.cfg.SnapshotInterval, nil, func() { r.snapJob(nh) })
	}
}

// every runs round every interval, and at once when nudge (which may be
// nil) fires, until stopJobs; a round that overruns delays the next rather
// than overlapping it.
func (r *Replica) every(interval time.Duration, nudge <-chan struct{}, round func()) {
	r.workers.Add(1)
	go func() {
		defer r.workers.Done()
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-r.jobsCtx.Done():
				return
			case <-t.C:
			case <-nudge:
			}
			round()
		}
	}()
}
