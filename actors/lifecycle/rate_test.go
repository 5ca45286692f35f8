package lifecycle

import (
	"testing"
	"time"

	"github.com/skiffdb/skiff/sm"
)

// A recovering node's progress carries its step, rates and an ETA
// (issue 5: entries/s and time left while replaying, bytes/s while
// receiving and installing a snapshot).
func TestProgressRatesAndSteps(t *testing.T) {
	recovering := []Event{IdentityKnown{self()}, SMEvent{sm.Event{Kind: sm.EventOpenDone, Index: 0}}, NodeReady{}, LeaderUpdated{2, 1}}
	applied := func(i uint64) Event { return SMEvent{sm.Event{Kind: sm.EventApplied, Index: i}} }
	type step struct {
		at time.Duration // after t0
		ev Event
	}
	cases := []struct {
		name     string
		steps    []step
		wantStep string
		wantRate func(Progress) float64
		rate     float64
		eta      time.Duration
	}{
		{name: "replay at 1000 entries/s with 5000 to go",
			steps: []step{{1 * time.Second, LeaderIndex{Index: 10_000}}, {1 * time.Second, applied(0)},
				{2 * time.Second, applied(1000)}, {3 * time.Second, applied(2000)}, {4 * time.Second, applied(5000)}},
			// Smoothed: 1000, 1000, then 0.5*1000 + 0.5*3000.
			wantStep: StepReplaying, wantRate: func(p Progress) float64 { return p.ApplyRate }, rate: 2000,
			eta: 2500 * time.Millisecond},
		{name: "a burst inside the window does not make a rate",
			steps:    []step{{1 * time.Second, applied(0)}, {1100 * time.Millisecond, applied(500)}},
			wantStep: StepReplaying, wantRate: func(p Progress) float64 { return p.ApplyRate }, rate: 0},
		{name: "receiving a snapshot",
			steps:    []step{{1 * time.Second, SnapshotReceiving{0}}, {2 * time.Second, SnapshotReceiving{1 << 20}}, {4 * time.Second, SnapshotReceiving{5 << 20}}},
			wantStep: StepReceiving, wantRate: func(p Progress) float64 { return p.ReceiveRate }, rate: float64(1<<20)*0.5 + float64(2<<20)*0.5},
		{name: "receiving, with the leader's total: 60 MiB of 100 left at 20 MiB/s",
			steps: []step{{1 * time.Second, SnapshotReceiving{1 << 20}}, {1 * time.Second, LeaderIndex{SentBytes: 0, SentTotal: 100 << 20}},
				{2 * time.Second, LeaderIndex{SentBytes: 20 << 20, SentTotal: 100 << 20}}, {3 * time.Second, LeaderIndex{SentBytes: 40 << 20, SentTotal: 100 << 20}}},
			wantStep: StepReceiving, wantRate: func(p Progress) float64 { return 0 }, rate: 0, eta: 3 * time.Second},
		{name: "installing a snapshot, 6 MiB of 10 left at 2 MiB/s",
			steps: []step{{1 * time.Second, SnapshotReceiving{9 << 20}}, {2 * time.Second, SMEvent{sm.Event{Kind: sm.EventSnapshotInstallBegun, Total: 10 << 20}}},
				{3 * time.Second, SMEvent{sm.Event{Kind: sm.EventSnapshotInstallProgress, Bytes: 2 << 20, Total: 10 << 20}}},
				{4 * time.Second, SMEvent{sm.Event{Kind: sm.EventSnapshotInstallProgress, Bytes: 4 << 20, Total: 10 << 20}}}},
			wantStep: StepInstalling, wantRate: func(p Progress) float64 { return p.InstallRate }, rate: 2 << 20, eta: 3 * time.Second},
		{name: "install done: replaying again",
			steps: []step{{1 * time.Second, SMEvent{sm.Event{Kind: sm.EventSnapshotInstallBegun, Total: 10}}},
				{2 * time.Second, SMEvent{sm.Event{Kind: sm.EventSnapshotInstallDone, Index: 9}}}},
			wantStep: StepReplaying, wantRate: func(p Progress) float64 { return 0 }, rate: 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := NewMachine(t0)
			for _, ev := range recovering {
				m.Apply(ev, t0)
			}
			for _, s := range tc.steps {
				m.Apply(s.ev, t0.Add(s.at))
			}
			st := m.State()
			if st.Phase != Recovering || st.Progress.Step != tc.wantStep {
				t.Fatalf("phase %s step %q, want recovering %q", st.Phase, st.Progress.Step, tc.wantStep)
			}
			if got := tc.wantRate(st.Progress); got != tc.rate {
				t.Fatalf("rate %v, want %v", got, tc.rate)
			}
			if st.Progress.ETA != tc.eta {
				t.Fatalf("eta %v, want %v", st.Progress.ETA, tc.eta)
			}
		})
	}
	// Ready has no step.
	m := NewMachine(t0)
	named := SMEvent{sm.Event{Kind: sm.EventNodes, Nodes: []sm.NodeInfo{{ReplicaID: 1, NodeID: "n1"}, {ReplicaID: 2, NodeID: "n2"}}}}
	for _, ev := range append(recovering, named, CaughtUp{2, 0}) {
		m.Apply(ev, t0)
	}
	if st := m.State(); st.Phase != Ready || st.Progress.Step != "" || st.Progress.ETA != 0 {
		t.Fatalf("ready: %s step %q eta %v", st.Phase, st.Progress.Step, st.Progress.ETA)
	}
}
