package bootstrap

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble"
	"go.uber.org/zap"
)

// identityKey holds the node's identity in its local store.
var identityKey = []byte("skiff/identity/v1")

// identity is what a node is, fixed at its first start. The Raft address
// changes only through a re-join or a peers.json (rejoin.go, peers.go):
// Dragonboat refuses to start on data made under another.
type identity struct {
	NodeID    string `json:"node_id"`
	ShardID   uint64 `json:"shard_id"`
	ReplicaID uint64 `json:"replica_id"`
	RaftAddr  string `json:"raft_addr"`
	// Joining: the node was told to join and has not started its replica
	// as a member yet (cleared once it has).
	Joining bool `json:"joining,omitempty"`
	// Joiner: the node entered the cluster by joining, so it never
	// bootstraps a shard of its own, whatever happens between its join and
	// Raft recording it.
	Joiner bool `json:"joiner,omitempty"`
	// Expecting: a -bootstrap-expect node whose replica has not started
	// yet with the founding members.
	Expecting bool `json:"expecting,omitempty"`
	// Founders are the members a -bootstrap-expect cluster started with.
	Founders map[uint64]string `json:"founders,omitempty"`
	// Promoted: a joiner seen to be a voter (it joined non-voting).
	Promoted bool `json:"promoted,omitempty"`
	// Reset: the Raft and SQLite state in the data directory belong to an
	// earlier replica of this node and must be removed before Raft starts
	// (a re-join under a new address, rejoin.go).
	Reset bool `json:"reset,omitempty"`
	// PeersIndex is the index this node recovered at when it last applied
	// a peers.json; the other listed voters may still ask for it.
	PeersIndex uint64 `json:"peers_index,omitempty"`
	// NonVoter: the node is a read replica (-raft-non-voter at its first
	// start). Kept so that a restart without the flag stays one: it would
	// otherwise promote itself to voter. Nil in directories made before
	// it was recorded: the flag given at the next start is adopted.
	NonVoter *bool `json:"non_voter,omitempty"`
	// RestorePending: an -auto-restore was downloaded for this directory
	// and has not been booted yet. Saved with the identity and cleared only
	// once Boot succeeded, so that a crash in between restores again at
	// the next start instead of serving (and backing up) an empty database.
	RestorePending bool `json:"restore_pending,omitempty"`
}

// isNonVoter reports whether the node is a read replica.
func (id identity) isNonVoter() bool { return id.NonVoter != nil && *id.NonVoter }

// reconcileNonVoter settles a stored identity against -raft-non-voter at a
// restart. A read replica stays one without the flag (restarts need no
// flags, API.md 5); a voter cannot become a read replica by restarting
// (Raft has it as a voter; remove it and join with a new data directory).
// save reports that id gained the field and must be stored.
func reconcileNonVoter(id *identity, flag bool) (save bool, err error) {
	if id.NonVoter == nil {
		id.NonVoter = &flag
		return true, nil
	}
	if flag && !*id.NonVoter {
		return false, fmt.Errorf("%w: -raft-non-voter given, but this data directory belongs to a voter "+
			"(to make it a read replica, remove it from the cluster and join with a new data directory)", ErrIdentityChanged)
	}
	return false, nil
}

// localStore is the node's durable key-value data outside SQLite and Raft
// (Pebble, which Dragonboat already uses for its log).
type localStore struct {
	db *pebble.DB
}

type pebbleLog struct{ s *zap.SugaredLogger }

func (p pebbleLog) Infof(f string, a ...any)  { p.s.Debugf(f, a...) }
func (p pebbleLog) Fatalf(f string, a ...any) { p.s.Fatalf(f, a...) }

func openLocalStore(dir string, log *zap.Logger) (*localStore, error) {
	db, err := pebble.Open(dir, &pebble.Options{Logger: pebbleLog{log.Named("pebble").Sugar()}})
	if err != nil {
		return nil, fmt.Errorf("open local store %s: %w", dir, err)
	}
	return &localStore{db: db}, nil
}

func (s *localStore) Close() error { return s.db.Close() }

// loadIdentity returns the stored identity, or ok=false on a first start.
func (s *localStore) loadIdentity() (identity, bool, error) {
	var id identity
	v, closer, err := s.db.Get(identityKey)
	if errors.Is(err, pebble.ErrNotFound) {
		return id, false, nil
	}
	if err != nil {
		return id, false, fmt.Errorf("read identity: %w", err)
	}
	defer closer.Close()
	if err := json.Unmarshal(v, &id); err != nil {
		return id, false, fmt.Errorf("decode identity: %w", err)
	}
	return id, true, nil
}

// saveIdentity stores id durably (fsynced) before Raft ever runs with it.
func (s *localStore) saveIdentity(id identity) error {
	b, err := json.Marshal(id)
	if err != nil {
		return err
	}
	if err := s.db.Set(identityKey, b, pebble.Sync); err != nil {
		return fmt.Errorf("write identity: %w", err)
	}
	return nil
}
