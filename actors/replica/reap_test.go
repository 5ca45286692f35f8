package replica

import (
	"slices"
	"testing"
	"time"
)

func TestReapable(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	members := []reapMember{
		{ReplicaID: 1, Addr: "a:1", Voter: true}, // self, the leader
		{ReplicaID: 2, Addr: "b:1", Voter: true},
		{ReplicaID: 3, Addr: "c:1", Voter: true},
		{ReplicaID: 4, Addr: "d:1"}, // a read replica
	}
	policy := reapPolicy{Self: 1, LeaderSince: t0, VoterTimeout: 2 * time.Second, NonVoterTimeout: 5 * time.Second}
	for _, tc := range []struct {
		name string
		p    func(reapPolicy) reapPolicy
		down map[string]time.Time
		now  time.Time
		want []uint64
	}{
		{"all reachable", nil, nil, t0.Add(time.Hour), nil},
		{"voter down past its timeout", nil, map[string]time.Time{"b:1": t0}, t0.Add(3 * time.Second), []uint64{2}},
		{"voter down within its timeout", nil, map[string]time.Time{"b:1": t0}, t0.Add(time.Second), nil},
		{"exactly the timeout is not past it", nil, map[string]time.Time{"b:1": t0}, t0.Add(2 * time.Second), nil},
		{"replica past the voter timeout only", nil, map[string]time.Time{"d:1": t0}, t0.Add(3 * time.Second), nil},
		{"replica past its own timeout", nil, map[string]time.Time{"d:1": t0}, t0.Add(6 * time.Second), []uint64{4}},
		{"several, sorted", nil, map[string]time.Time{"d:1": t0, "c:1": t0, "b:1": t0}, t0.Add(time.Minute), []uint64{2, 3, 4}},
		{"never self", nil, map[string]time.Time{"a:1": t0}, t0.Add(time.Minute), nil},
		{"unknown address ignored", nil, map[string]time.Time{"z:1": t0}, t0.Add(time.Minute), nil},
		{"failures before leadership count from it", func(p reapPolicy) reapPolicy { p.LeaderSince = t0.Add(time.Minute); return p },
			map[string]time.Time{"b:1": t0}, t0.Add(time.Minute + time.Second), nil},
		{"and reap once the timeout has passed since", func(p reapPolicy) reapPolicy { p.LeaderSince = t0.Add(time.Minute); return p },
			map[string]time.Time{"b:1": t0}, t0.Add(time.Minute + 3*time.Second), []uint64{2}},
		{"voter reaping off", func(p reapPolicy) reapPolicy { p.VoterTimeout = 0; return p },
			map[string]time.Time{"b:1": t0, "d:1": t0}, t0.Add(time.Hour), []uint64{4}},
		{"replica reaping off", func(p reapPolicy) reapPolicy { p.NonVoterTimeout = 0; return p },
			map[string]time.Time{"b:1": t0, "d:1": t0}, t0.Add(time.Hour), []uint64{2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := policy
			if tc.p != nil {
				p = tc.p(p)
			}
			if got := reapable(p, members, tc.down, tc.now); !slices.Equal(got, tc.want) {
				t.Fatalf("reapable = %v, want %v", got, tc.want)
			}
		})
	}
}

// A failure counts from the first one; a connection made clears it.
func TestReachability(t *testing.T) {
	r := newReachability()
	t0 := time.Unix(100, 0)
	r.failed("b:1", t0)
	r.failed("b:1", t0.Add(time.Second))
	if got := r.snapshot()["b:1"]; !got.Equal(t0) {
		t.Fatalf("down since %v, want the first failure %v", got, t0)
	}
	r.reached("b:1")
	if _, ok := r.snapshot()["b:1"]; ok {
		t.Fatal("still down after a connection was made")
	}
}
