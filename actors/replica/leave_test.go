package replica

import (
	"slices"
	"testing"
	"time"

	"github.com/skiffdb/skiff/actors/lifecycle"
)

func TestHandoverTargets(t *testing.T) {
	members := []lifecycle.Member{
		{ReplicaID: 3, RaftAddr: "c:1", Voter: true},
		{ReplicaID: 1, RaftAddr: "a:1", Voter: true},
		{ReplicaID: 2, RaftAddr: "b:1", Voter: true},
		{ReplicaID: 4, RaftAddr: "d:1"},
	}
	for _, tc := range []struct {
		name string
		down map[string]time.Time
		want []uint64
	}{
		{"every other voter, sorted, no read replica", nil, []uint64{2, 3}},
		{"unreachable voters left out", map[string]time.Time{"b:1": {}}, []uint64{3}},
		{"none reachable", map[string]time.Time{"b:1": {}, "c:1": {}}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := handoverTargets(1, members, tc.down); !slices.Equal(got, tc.want) {
				t.Fatalf("handoverTargets = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestLastVoter(t *testing.T) {
	v := func(id uint64, voter bool) lifecycle.Member { return lifecycle.Member{ReplicaID: id, Voter: voter} }
	for _, tc := range []struct {
		name    string
		members []lifecycle.Member
		want    bool
	}{
		{"alone", []lifecycle.Member{v(1, true)}, true},
		{"alone with a read replica", []lifecycle.Member{v(1, true), v(2, false)}, true},
		{"two voters", []lifecycle.Member{v(1, true), v(2, true)}, false},
		{"a read replica itself", []lifecycle.Member{v(1, false), v(2, true)}, false},
		{"membership unknown", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := lastVoter(1, tc.members); got != tc.want {
				t.Fatalf("lastVoter = %v, want %v", got, tc.want)
			}
		})
	}
}
