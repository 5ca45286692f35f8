package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/skiffdb/skiff/actors/lifecycle"
)

// startGatewayCfg is startGateway with a configuration of the test's own.
func startGatewayCfg(t *testing.T, cfg Config, data Data, p *phases) string {
	t.Helper()
	g, q := unservedGateway(t, cfg, data, p)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { _ = q.Run(ctx) }()
	go func() { done <- g.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return "http://" + g.ln.Addr().String()
}

// kinds maps each key of a JSON object to its JSON type.
func kinds(m map[string]any) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		switch v.(type) {
		case float64:
			out[k] = "number"
		case string:
			out[k] = "string"
		case bool:
			out[k] = "bool"
		case map[string]any:
			out[k] = "object"
		case []any:
			out[k] = "array"
		default:
			out[k] = "null"
		}
	}
	return out
}

func sub(t *testing.T, doc map[string]any, path string) map[string]any {
	t.Helper()
	v := any(doc)
	for _, k := range strings.Split(path, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			t.Fatalf("%s: not an object at %s", path, k)
		}
		v = m[k]
	}
	m, ok := v.(map[string]any)
	if !ok {
		t.Fatalf("%s is %T, want an object", path, v)
	}
	return m
}

func wantKinds(t *testing.T, what string, got map[string]any, want map[string]string) {
	t.Helper()
	k := kinds(got)
	if len(k) != len(want) {
		var keys []string
		for key := range k {
			keys = append(keys, key)
		}
		sort.Strings(keys)
		t.Errorf("%s has keys %v, want %d keys", what, keys, len(want))
	}
	for key, typ := range want {
		if k[key] != typ {
			t.Errorf("%s.%s is %q (%v), want a %s (API.md 2.1)", what, key, k[key], got[key], typ)
		}
	}
}

var (
	// rqlite's store.raft keys as Skiff fills them, with their JSON types
	// (API.md 2.1: hashicorp/raft's Stats with numbers as numbers).
	raftKinds = map[string]string{
		"state": "string", "term": "number", "applied_index": "number", "commit_index": "number",
		"fsm_pending": "number", "last_log_index": "number", "last_log_term": "number",
		"last_snapshot_index": "number", "last_snapshot_term": "number", "latest_configuration": "string",
		"latest_configuration_index": "number", "voter": "bool", "num_peers": "number", "last_contact": "string",
	}
	sqliteKinds = map[string]string{
		"path": "string", "db_size": "number", "size": "number", "wal_size": "number", "version": "string", "pragmas": "object",
	}
	pragmaKinds = map[string]string{
		"busy_timeout": "string", "foreign_keys": "string", "journal_mode": "string", "synchronous": "string", "wal_autocheckpoint": "string",
	}
	storeVarKinds = map[string]string{
		"num_snapshots": "number", "num_user_snapshots": "number", "num_restores": "number", "num_joins": "number",
		"num_ignored_joins": "number", "num_removed_before_joins": "number", "num_removes": "number",
		"num_reaped_nodes": "number", "num_wal_snapshots": "number",
		"leader_changes_observed": "number", "num_backups": "number", "num_loads": "number", "num_boots": "number",
	}
	clusterVarKinds = map[string]string{"num_join_req": "number", "num_remove_node_req": "number", "num_get_node_api_req": "number"}
)

// TestStoreStatsShape: /status store.raft, store.sqlite3 and the store's
// configuration keys, and /debug/vars store and cluster, have rqlite's
// names and JSON types in every phase (zero before the replica's first
// sample), and carry the published sample's values.
func TestStoreStatsShape(t *testing.T) {
	dir := t.TempDir()
	dbDir := filepath.Join(dir, "db")
	if err := os.MkdirAll(dbDir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, size := range map[string]int{"CURRENT": 0, "db-1.sqlite": 8192, "db-1.sqlite-wal": 4152} {
		b := make([]byte, size)
		if name == "CURRENT" {
			b = []byte("db-1.sqlite\n")
		}
		if err := os.WriteFile(filepath.Join(dbDir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	p := &phases{}
	base := startGatewayCfg(t, Config{Store: StoreInfo{DataDir: dir, SQLiteDir: dbDir, SnapshotThreshold: 8192,
		SnapshotInterval: 10 * time.Second, TrailingLogs: 10240}}, &fakeData{}, p)
	status := func() map[string]any {
		t.Helper()
		r := do(t, "GET", base+"/status", "")
		var doc map[string]any
		if r.status != 200 || json.Unmarshal([]byte(r.body), &doc) != nil {
			t.Fatalf("/status: %d %q", r.status, r.body)
		}
		return doc
	}
	for _, ph := range []lifecycle.Phase{lifecycle.Starting, lifecycle.Opening, lifecycle.Joining, lifecycle.Recovering,
		lifecycle.Ready, lifecycle.Degraded, lifecycle.Stopping, lifecycle.Removed} {
		p.set(ph, 0)
		doc := status()
		raft := sub(t, doc, "store.raft")
		wantKinds(t, string(ph)+" store.raft", raft, raftKinds)
		if stopped := ph == lifecycle.Stopping || ph == lifecycle.Removed; stopped != (raft["state"] == "Shutdown") {
			t.Errorf("%s: store.raft.state %v", ph, raft["state"])
		}
		wantKinds(t, string(ph)+" store.sqlite3", sub(t, doc, "store.sqlite3"), sqliteKinds)
		wantKinds(t, string(ph)+" store.sqlite3.pragmas.rw", sub(t, doc, "store.sqlite3.pragmas.rw"), pragmaKinds)
		ro := sub(t, doc, "store.sqlite3.pragmas.ro")
		if ro["query_only"] != "1" {
			t.Errorf("%s: pragmas.ro %v lacks query_only 1", ph, ro)
		}
		store := sub(t, doc, "store")
		for key, typ := range map[string]string{"dir": "string", "dir_size": "number", "snapshot_threshold": "number",
			"snapshot_interval": "string", "trailing_logs": "number", "nodes": "array"} {
			if kinds(store)[key] != typ {
				t.Errorf("%s: store.%s is %v, want a %s", ph, key, store[key], typ)
			}
		}
		if store["dir"] != dir || store["dir_size"] != float64(8192+4152+12) || store["snapshot_interval"] != "10s" ||
			store["snapshot_threshold"] != float64(8192) || store["trailing_logs"] != float64(10240) {
			t.Errorf("%s: store configuration %v", ph, store)
		}
		// rqlite's store.cdc: CDC is off in this gateway's configuration.
		if c := sub(t, doc, "store.cdc"); c["enabled"] != false || c["registered"] != false {
			t.Errorf("%s: store.cdc %v", ph, c)
		}
		sq := sub(t, doc, "store.sqlite3")
		if sq["path"] != filepath.Join(dbDir, "db-1.sqlite") || sq["db_size"] != float64(8192) || sq["wal_size"] != float64(4152) {
			t.Errorf("%s: store.sqlite3 %v", ph, sq)
		}
		r := do(t, "GET", base+"/debug/vars", "")
		var vars map[string]any
		if r.status != 200 || json.Unmarshal([]byte(r.body), &vars) != nil {
			t.Fatalf("/debug/vars: %d %q", r.status, r.body)
		}
		wantKinds(t, string(ph)+" vars store", sub(t, vars, "store"), storeVarKinds)
		wantKinds(t, string(ph)+" vars cluster", sub(t, vars, "cluster"), clusterVarKinds)
		for _, k := range []string{"user_snapshots", "user_reaps", "executions", "queries", "requests", "num_status"} {
			if kinds(sub(t, vars, "http"))[k] != "number" {
				t.Errorf("%s: /debug/vars http.%s missing", ph, k)
			}
		}
	}

	// A leader of two voters and a read replica, with a sample published.
	st := &lifecycle.State{Phase: lifecycle.Ready, Since: time.Now(), StartedAt: time.Now(), NodeReady: true,
		LeaderReplicaID: 1, Term: 3, Restores: 1,
		Identity: lifecycle.Identity{NodeID: "n1", ReplicaID: 1, RaftAddr: "a1", Voter: true},
		Progress: lifecycle.Progress{AppliedIndex: 40},
		Members: []lifecycle.Member{{NodeID: "n1", ReplicaID: 1, RaftAddr: "a1", Voter: true},
			{NodeID: "n2", ReplicaID: 2, RaftAddr: "a2", Voter: true}, {NodeID: "n3", ReplicaID: 3, RaftAddr: "a3"}},
		Replica: lifecycle.ReplicaStats{SampledAt: time.Now(), LastLogIndex: 43, LastLogTerm: 3, CommitIndex: 42,
			LastSnapshotIndex: 30, LastSnapshotTerm: 2, Term: 3, ConfigChangeIndex: 12, SQLitePath: filepath.Join(dbDir, "db-1.sqlite"),
			SQLiteSize: 16384, Snapshots: 4, UserSnapshots: 1, Joins: 2, IgnoredJoins: 1, Removes: 1, LeaderChanges: 1}}
	p.st.Store(st)
	raft := sub(t, status(), "store.raft")
	for k, v := range map[string]any{"state": "Leader", "term": 3.0, "applied_index": 40.0, "commit_index": 42.0, "fsm_pending": 2.0,
		"last_log_index": 43.0, "last_log_term": 3.0, "last_snapshot_index": 30.0, "last_snapshot_term": 2.0,
		"latest_configuration_index": 12.0, "voter": true, "num_peers": 1.0, "last_contact": "0",
		"latest_configuration": "[{Suffrage:Voter ID:n1 Address:a1} {Suffrage:Voter ID:n2 Address:a2} {Suffrage:Nonvoter ID:n3 Address:a3}]"} {
		if raft[k] != v {
			t.Errorf("store.raft.%s = %v, want %v", k, raft[k], v)
		}
	}
	if sq := sub(t, status(), "store.sqlite3"); sq["size"] != 16384.0 {
		t.Errorf("store.sqlite3.size = %v, want 16384", sq["size"])
	}
	if r := do(t, "GET", base+"/status?key=store.raft.state", ""); r.body != `"Leader"` {
		t.Errorf("?key=store.raft.state: %q", r.body)
	}
	if r := do(t, "GET", base+"/status?key=store.sqlite3.pragmas.rw.journal_mode", ""); r.body != `"wal"` {
		t.Errorf("?key=store.sqlite3.pragmas.rw.journal_mode: %q", r.body)
	}
	// The operator requests are counted where the gateway sees them.
	do(t, "POST", base+"/snapshot", "")
	do(t, "POST", base+"/reap", "")
	do(t, "POST", base+"/join", `{"id":"n4","addr":"a4"}`)
	do(t, "GET", base+"/skiff/node", "")
	r := do(t, "GET", base+"/debug/vars", "")
	var vars map[string]any
	if json.Unmarshal([]byte(r.body), &vars) != nil {
		t.Fatalf("/debug/vars: %q", r.body)
	}
	for path, want := range map[string]float64{"http.user_snapshots": 1, "http.user_reaps": 1, "cluster.num_join_req": 1,
		"cluster.num_get_node_api_req": 1, "store.num_snapshots": 4, "store.num_user_snapshots": 1, "store.num_restores": 1,
		"store.num_joins": 2, "store.num_ignored_joins": 1, "store.num_removes": 1} {
		i := strings.LastIndex(path, ".")
		if got := sub(t, vars, path[:i])[path[i+1:]]; got != want {
			t.Errorf("/debug/vars %s = %v, want %v", path, got, want)
		}
	}
	// A follower that is a read replica: not a voter; its peers are the
	// two voters.
	f := *st
	f.Identity = lifecycle.Identity{NodeID: "n3", ReplicaID: 3, RaftAddr: "a3"}
	p.st.Store(&f)
	raft = sub(t, status(), "store.raft")
	if raft["state"] != "Follower" || raft["voter"] != false || raft["num_peers"] != 2.0 {
		t.Errorf("read replica: state %v, voter %v, num_peers %v; want Follower, false, 2", raft["state"], raft["voter"], raft["num_peers"])
	}
}

// TestStatusSections: sections other actors publish (CDC, ingest) appear
// under their names in /status and /debug/vars in every phase, and a
// repeated name is refused.
func TestStatusSections(t *testing.T) {
	p := &phases{}
	base := startGatewayCfg(t, Config{Sections: []Section{
		{Name: "cdc", Status: func() any { return obj{"enabled": true} }, Vars: func() any { return obj{"num_sent": 3} }},
		{Name: "ingest", Status: func() any { return obj{"enabled": false} }},
	}}, &fakeData{}, p)
	for _, ph := range []lifecycle.Phase{lifecycle.Starting, lifecycle.Opening, lifecycle.Recovering, lifecycle.Ready, lifecycle.Stopping} {
		p.set(ph, 0)
		if r := do(t, "GET", base+"/status?key=cdc", ""); r.status != 200 || r.body != `{"enabled":true}` {
			t.Errorf("%s: /status?key=cdc: %d %q", ph, r.status, r.body)
		}
		if r := do(t, "GET", base+"/status?key=ingest", ""); r.status != 200 || r.body != `{"enabled":false}` {
			t.Errorf("%s: /status?key=ingest: %d %q", ph, r.status, r.body)
		}
		if r := do(t, "GET", base+"/debug/vars?key=cdc", ""); r.status != 200 || r.body != `{"num_sent":3}` {
			t.Errorf("%s: /debug/vars?key=cdc: %d %q", ph, r.status, r.body)
		}
	}
	if err := (Config{AdvAddr: "x:1", Sections: []Section{{Name: "cdc"}, {Name: "cdc"}}}).WithDefaults().Validate(); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("repeated section: %v, want ErrInvalidConfig", err)
	}
}
