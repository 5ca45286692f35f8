package replica

import (
	"errors"
	"reflect"
	"testing"
)

func TestPlanJoin(t *testing.T) {
	three := membership{Voters: map[uint64]string{1: "a1", 2: "a2", 3: "a3"}}
	add := func(id uint64, addr string) configChange {
		return configChange{Kind: changeAddNonVoting, ReplicaID: id, RaftAddr: addr}
	}
	remove := func(id uint64, addr string) configChange {
		return configChange{Kind: changeRemove, ReplicaID: id, RaftAddr: addr}
	}
	names := map[uint64]string{1: "n1", 2: "n2", 3: "n3"}
	cases := []struct {
		name   string
		m      membership
		nodeOf map[uint64]string
		req    joinRequest
		want   joinPlan
		bad    bool
	}{
		{name: "new node", m: three, nodeOf: names, req: joinRequest{9, "a9", "n9"},
			want: joinPlan{Changes: []configChange{add(9, "a9")}}},
		{name: "new node, no node ID", m: three, nodeOf: names, req: joinRequest{9, "a9", ""},
			want: joinPlan{Changes: []configChange{add(9, "a9")}}},
		{name: "voter at the same address: nothing to do", m: three, nodeOf: names, req: joinRequest{2, "a2", "n2"},
			want: joinPlan{AlreadyMember: true}},
		{name: "non-voter at the same address: nothing to do",
			m: membership{Voters: three.Voters, NonVoters: map[uint64]string{9: "a9"}}, req: joinRequest{9, "a9", "n9"},
			want: joinPlan{AlreadyMember: true}},
		{name: "same replica at another address", m: three, nodeOf: names, req: joinRequest{2, "b2", "n2"}, bad: true},
		{name: "a removed replica", m: membership{Voters: three.Voters, Removed: map[uint64]struct{}{9: {}}},
			req: joinRequest{9, "a9", "n9"}, bad: true},
		{name: "node back with new data at its address: old replica first", m: three, nodeOf: names,
			req: joinRequest{9, "a2", "n2"}, want: joinPlan{Changes: []configChange{remove(2, "a2"), add(9, "a2")}}},
		{name: "node back with new data at a new address", m: three, nodeOf: names,
			req: joinRequest{9, "b2", "n2"}, want: joinPlan{Changes: []configChange{remove(2, "a2"), add(9, "b2")}}},
		{name: "address of an unnamed member", m: three, nodeOf: map[uint64]string{1: "n1"},
			req: joinRequest{9, "a3", "n9"}, want: joinPlan{Changes: []configChange{remove(3, "a3"), add(9, "a3")}}},
		{name: "address of another named node", m: three, nodeOf: names, req: joinRequest{9, "a3", "n9"}, bad: true},
		{name: "address held, joiner unnamed", m: three, nodeOf: names,
			req: joinRequest{9, "a3", ""}, want: joinPlan{Changes: []configChange{remove(3, "a3"), add(9, "a3")}}},
		{name: "old replicas by node ID and by address, in ID order",
			m:      membership{Voters: map[uint64]string{1: "a1", 5: "a5"}, NonVoters: map[uint64]string{4: "a9"}},
			nodeOf: map[uint64]string{1: "n1", 5: "n9"}, req: joinRequest{9, "a9", "n9"},
			want: joinPlan{Changes: []configChange{remove(4, "a9"), remove(5, "a5"), add(9, "a9")}}},
		{name: "a witness at the address", m: membership{Voters: three.Voters, Witnesses: map[uint64]string{7: "a9"}},
			req: joinRequest{9, "a9", "n9"}, want: joinPlan{Changes: []configChange{remove(7, "a9"), add(9, "a9")}}},
		{name: "no replica ID", m: three, req: joinRequest{0, "a9", "n9"}, bad: true},
		{name: "no address", m: three, req: joinRequest{9, "", "n9"}, bad: true},
		{name: "empty membership", req: joinRequest{9, "a9", "n9"}, want: joinPlan{Changes: []configChange{add(9, "a9")}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := planJoin(tc.m, tc.nodeOf, tc.req)
			if tc.bad {
				if !errors.Is(err, ErrBadMember) {
					t.Fatalf("planJoin = %+v, %v; want ErrBadMember", got, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("planJoin = %+v, want %+v", got, tc.want)
			}
		})
	}
}
