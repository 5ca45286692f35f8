package gateway

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	sqlite3 "github.com/mattn/go-sqlite3"

	"github.com/skiffdb/skiff/actors/lifecycle"
	"github.com/skiffdb/skiff/sm"
)

// StoreInfo is what the node's configuration says about its store, shown
// in /status store (API.md 2.1). It does not change while the node runs.
type StoreInfo struct {
	// DataDir is the node's data directory (store.dir; its size is
	// store.dir_size).
	DataDir string
	// SQLiteDir holds the state machine's database files.
	SQLiteDir string
	// SnapshotThreshold is the number of applied entries between local
	// snapshots (-raft-snap); SnapshotInterval is -raft-snap-int.
	SnapshotThreshold uint64
	SnapshotInterval  time.Duration
	// TrailingLogs is the number of entries kept behind a snapshot.
	TrailingLogs uint64
	// ForeignKeys is -fk: it shows in the connections' pragmas.
	ForeignKeys bool
	// CDC is whether -cdc-config turned change data capture on
	// (store.cdc, as rqlite's {"enabled","registered"}).
	CDC bool
}

// opCounters count the operator requests rqlite's /debug/vars shows (its
// http and cluster maps): each handler increments its own.
type opCounters struct {
	userSnapshots, userReaps, loads, boots atomic.Int64
	joinReq, removeReq, nodeMetaReq        atomic.Int64
}

// raftSection is store.raft as rqlite shows it: hashicorp/raft's Stats()
// with numbers as JSON numbers (API.md 2.1). The numbers are the
// replica's published sample; the applied index and the leader come from
// lifecycle directly (they are fresher), and the sample is raised to agree
// with them (applied <= commit <= last log index).
func raftSection(st *lifecycle.State, now time.Time) obj {
	rs := st.Replica
	applied := st.Progress.AppliedIndex
	commit := max(rs.CommitIndex, applied)
	lastLog := max(rs.LastLogIndex, commit)
	lastContact := "never"
	if st.IsLeader() {
		lastContact = "0"
	} else if !st.LastLeaderContact.IsZero() {
		lastContact = now.Sub(st.LastLeaderContact).String()
	}
	voter, numPeers := false, 0
	self := st.Identity.ReplicaID
	found := false
	for _, m := range st.Members {
		if m.ReplicaID == self && self != 0 {
			voter, found = m.Voter, true
		} else if m.Voter {
			numPeers++
		}
	}
	if !found && st.IsLeader() {
		// Before the membership is first read, a leader is a voter.
		voter = true
	}
	return obj{
		"state":                      raftState(st),
		"term":                       max(st.Term, rs.Term),
		"applied_index":              applied,
		"commit_index":               commit,
		"fsm_pending":                commit - applied,
		"last_log_index":             lastLog,
		"last_log_term":              rs.LastLogTerm,
		"last_snapshot_index":        rs.LastSnapshotIndex,
		"last_snapshot_term":         rs.LastSnapshotTerm,
		"latest_configuration":       latestConfiguration(st.Members),
		"latest_configuration_index": rs.ConfigChangeIndex,
		"voter":                      voter,
		"num_peers":                  numPeers,
		"last_contact":               lastContact,
	}
}

// latestConfiguration formats the membership as hashicorp/raft prints its
// configuration.
func latestConfiguration(ms []lifecycle.Member) string {
	parts := make([]string, 0, len(ms))
	for _, m := range ms {
		suffrage := "Nonvoter"
		if m.Voter {
			suffrage = "Voter"
		}
		parts = append(parts, fmt.Sprintf("{Suffrage:%s ID:%s Address:%s}", suffrage, m.NodeID, m.RaftAddr))
	}
	return "[" + strings.Join(parts, " ") + "]"
}

// sqliteSection is store.sqlite3 (API.md 2.1). File sizes are read from
// the file system now (no Raft involved); size is the state machine's
// page_count * page_size as last sampled.
func (g *Gateway) sqliteSection(st *lifecycle.State) obj {
	version, _, _ := sqlite3.Version()
	path := st.Replica.SQLitePath
	if path == "" {
		path = sm.LivePath(g.cfg.Store.SQLiteDir)
	}
	var dbSize, walSize int64
	if path != "" {
		if abs, err := filepath.Abs(path); err == nil {
			path = abs
		}
		dbSize, walSize = fileSize(path), fileSize(path+"-wal")
	}
	rw, ro := sm.Pragmas(g.cfg.Store.ForeignKeys)
	// As obj, so that ?key= reaches into them.
	toObj := func(m map[string]string) obj {
		o := make(obj, len(m))
		for k, v := range m {
			o[k] = v
		}
		return o
	}
	return obj{
		"path":     path,
		"db_size":  dbSize,
		"size":     st.Replica.SQLiteSize,
		"wal_size": walSize,
		"version":  version,
		"pragmas":  obj{"rw": toObj(rw), "ro": toObj(ro)},
	}
}

// addStoreStats adds rqlite's store keys built from configuration, the
// file system and the replica's sample (API.md 2.1).
func (g *Gateway) addStoreStats(store obj, st *lifecycle.State, now time.Time) {
	s := g.cfg.Store
	store["dir"] = s.DataDir
	store["dir_size"] = dirSize(s.DataDir)
	store["snapshot_threshold"] = s.SnapshotThreshold
	store["snapshot_interval"] = s.SnapshotInterval.String()
	store["trailing_logs"] = s.TrailingLogs
	store["cdc"] = obj{"enabled": s.CDC, "registered": s.CDC}
	store["raft"] = raftSection(st, now)
	store["sqlite3"] = g.sqliteSection(st)
}

// storeVars is /debug/vars store: rqlite's store counters (num_snapshots,
// num_restores, num_joins, ...).
func (g *Gateway) storeVars(st *lifecycle.State) obj {
	rs := st.Replica
	return obj{
		"num_snapshots":            rs.Snapshots,
		"num_user_snapshots":       rs.UserSnapshots,
		"num_restores":             st.Restores,
		"num_joins":                rs.Joins,
		"num_ignored_joins":        rs.IgnoredJoins,
		"num_removed_before_joins": rs.RemovedBeforeJoins,
		"num_removes":              rs.Removes,
		"num_reaped_nodes":         rs.Reaps,
		"num_wal_snapshots":        rs.WALSnapshots,
		"leader_changes_observed":  rs.LeaderChanges,
		"num_backups":              g.stats.backup.Load(),
		"num_loads":                g.ops.loads.Load(),
		"num_boots":                g.ops.boots.Load(),
	}
}

// clusterVars is /debug/vars cluster: the node-to-node requests this node
// served (rqlite's cluster service counters).
func (g *Gateway) clusterVars() obj {
	return obj{
		"num_join_req":         g.ops.joinReq.Load(),
		"num_remove_node_req":  g.ops.removeReq.Load(),
		"num_get_node_api_req": g.ops.nodeMetaReq.Load(),
	}
}

// httpVars adds rqlite's names for the http counters to Skiff's own.
func (g *Gateway) httpVars(sec obj) {
	sec["executions"] = g.stats.execute.Load()
	sec["queries"] = g.stats.query.Load()
	sec["requests"] = g.stats.request.Load()
	sec["num_status"] = g.stats.status.Load()
	sec["user_snapshots"] = g.ops.userSnapshots.Load()
	sec["user_reaps"] = g.ops.userReaps.Load()
	sec["loads"] = g.ops.loads.Load()
	sec["boot"] = g.ops.boots.Load()
	sec["authOK"] = g.stats.authOK.Load()
	if g.cfg.Auth == nil {
		// Not counted per request with auth off (authorized): every
		// request to a route that needs a perm passed its check.
		sec["authOK"] = g.stats.authOK.Load() + g.stats.execute.Load() + g.stats.query.Load() + g.stats.request.Load() +
			g.stats.status.Load() + g.stats.readyz.Load() + g.stats.nodes.Load() + g.stats.backup.Load() +
			g.ops.loads.Load() + g.ops.boots.Load() + g.ops.userSnapshots.Load() + g.ops.userReaps.Load() + g.ops.removeReq.Load()
	}
	sec["authFail"] = g.stats.authFail.Load()
}

// fileSize is a file's size, 0 if it does not exist.
func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// dirSize sums the sizes of the files under dir, as rqlite's dir_size
// does. Files come and go while it walks (log segments, snapshots): those
// are skipped.
func dirSize(dir string) int64 {
	if dir == "" {
		return 0
	}
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		if fi, err := d.Info(); err == nil {
			n += fi.Size()
		}
		return nil
	})
	return n
}
