package bootstrap

import (
	"errors"
	"maps"
	"strings"
	"testing"

	"github.com/skiffdb/skiff/sm"
)

// rqlite's peers.json format (API.md 5): a list of {id, address,
// non_voter}.
func TestParsePeers(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     []peer
		err      string // substring of the refusal; "" accepts
	}{
		{name: "rqlite's example", in: `[{"id": "1", "address": "10.1.0.1:4002", "non_voter": false},
			{"id": "2", "address": "10.1.0.2:4002", "non_voter": false}, {"id": "3", "address": "10.1.0.3:4002", "non_voter": true}]`,
			want: []peer{{"1", "10.1.0.1:4002", false}, {"2", "10.1.0.2:4002", false}, {"3", "10.1.0.3:4002", true}}},
		{name: "non_voter may be left out", in: `[{"id": "a", "address": "h:1"}]`, want: []peer{{"a", "h:1", false}}},
		{name: "not JSON", in: `{"id"`, err: "JSON list"},
		{name: "an object, not a list", in: `{"id": "1", "address": "h:1"}`, err: "JSON list"},
		{name: "unknown field (typo)", in: `[{"id": "1", "address": "h:1", "nonvoter": true}]`, err: "nonvoter"},
		{name: "trailing data", in: `[{"id": "1", "address": "h:1"}] []`, err: "trailing"},
		{name: "empty", in: `[]`, err: "empty"},
		{name: "no id", in: `[{"address": "h:1"}]`, err: "entry 1 has no id"},
		{name: "no port", in: `[{"id": "1", "address": "h"}]`, err: "not host:port"},
		{name: "no host", in: `[{"id": "1", "address": ":4002"}]`, err: "not host:port"},
		{name: "duplicate id", in: `[{"id": "1", "address": "h:1"}, {"id": "1", "address": "h:2"}]`, err: `node "1" is listed twice`},
		{name: "duplicate address", in: `[{"id": "1", "address": "h:1"}, {"id": "2", "address": "h:1"}]`, err: "address h:1 is listed twice"},
		{name: "no voter", in: `[{"id": "1", "address": "h:1", "non_voter": true}]`, err: "no voter"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parsePeers([]byte(tc.in))
			if tc.err != "" {
				if !errors.Is(err, ErrPeers) || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want ErrPeers saying %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Fatalf("got %+v, want %+v", got, tc.want)
				}
			}
		})
	}
}

func TestPeerOf(t *testing.T) {
	peers := []peer{{"1", "h:1", false}, {"2", "h:2", true}}
	for _, tc := range []struct {
		name, id, addr string
		nonVoter       bool
		err            string
	}{
		{name: "listed voter", id: "1", addr: "h:1"},
		{name: "listed read replica", id: "2", addr: "h:2", nonVoter: true},
		{name: "not listed", id: "3", addr: "h:3", err: "is not listed"},
		{name: "address differs from the flags", id: "1", addr: "h:9", err: "but -raft-adv-addr is h:9"},
		{name: "role differs from the flags", id: "2", addr: "h:2", err: "non_voter=true, but -raft-non-voter is false"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := peerOf(peers, tc.id, tc.addr, tc.nonVoter)
			if tc.err == "" && err != nil || tc.err != "" && (!errors.Is(err, ErrPeers) || !strings.Contains(err.Error(), tc.err)) {
				t.Fatalf("err = %v, want %q", err, tc.err)
			}
		})
	}
}

func TestVoterMembers(t *testing.T) {
	self := identity{NodeID: "1", ReplicaID: 11}
	table := []sm.NodeInfo{{ReplicaID: 11, NodeID: "1", RaftAddr: "old:1"}, {ReplicaID: 22, NodeID: "2", RaftAddr: "old:2"},
		{ReplicaID: 33, NodeID: "3", RaftAddr: "old:3"}}
	for _, tc := range []struct {
		name  string
		peers []peer
		want  map[uint64]string
		err   string
	}{
		{name: "new addresses by node ID", peers: []peer{{"1", "new:1", false}, {"2", "new:2", false}, {"3", "new:3", false}},
			want: map[uint64]string{11: "new:1", 22: "new:2", 33: "new:3"}},
		{name: "a smaller cluster", peers: []peer{{"1", "new:1", false}, {"3", "new:3", false}},
			want: map[uint64]string{11: "new:1", 33: "new:3"}},
		{name: "non-voters are not imported", peers: []peer{{"1", "new:1", false}, {"2", "new:2", true}},
			want: map[uint64]string{11: "new:1"}},
		{name: "unknown node", peers: []peer{{"1", "new:1", false}, {"9", "new:9", false}}, err: `node "9" is not in this node's node table`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := voterMembers(tc.peers, self, table)
			if tc.err != "" {
				if !errors.Is(err, ErrPeers) || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || !maps.Equal(got, tc.want) {
				t.Fatalf("got %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}

func TestJoinsOwnCluster(t *testing.T) {
	table := []sm.NodeInfo{{NodeID: "1", RaftAddr: "h:1", APIAddr: "h:11"}, {NodeID: "2", RaftAddr: "h:2", APIAddr: "h:12"}}
	for _, tc := range []struct {
		name string
		join []string
		want bool
	}{
		{name: "another member's Raft address", join: []string{"h:2"}, want: true},
		{name: "another member's API URL", join: []string{"http://h:12/"}, want: true},
		{name: "one of several", join: []string{"x:1", "h:2"}, want: true},
		{name: "only itself", join: []string{"h:1", "http://h:11"}},
		{name: "another cluster", join: []string{"x:1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := joinsOwnCluster(tc.join, "1", table); got != tc.want {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}
