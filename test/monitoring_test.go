package test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// jsonDoc is a decoded JSON object, walked by dotted paths.
type jsonDoc map[string]any

// at returns the value at a dotted path ("store.raft.state"), if present.
func (d jsonDoc) at(path string) (any, bool) {
	var v any = map[string]any(d)
	for _, k := range strings.Split(path, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			return nil, false
		}
		if v, ok = m[k]; !ok {
			return nil, false
		}
	}
	return v, true
}

// num returns the JSON number at path (-1 if it is missing or not one).
func (d jsonDoc) num(path string) float64 {
	if v, ok := d.at(path); ok {
		if f, ok := v.(float64); ok {
			return f
		}
	}
	return -1
}

// getDoc GETs path on m and decodes the JSON object it answers.
func getDoc(t *testing.T, m *member, path string) jsonDoc {
	t.Helper()
	r := m.get(path)
	var d jsonDoc
	if r.status != http.StatusOK || json.Unmarshal(r.body, &d) != nil {
		t.Fatalf("GET %s on %s: %s", path, m.id, r)
	}
	return d
}

// jsonKind names a decoded JSON value's type as JSON does.
func jsonKind(v any) string {
	switch v.(type) {
	case float64:
		return "number"
	case string:
		return "string"
	case bool:
		return "bool"
	case map[string]any:
		return "object"
	case []any:
		return "array"
	case nil:
		return "null"
	}
	return fmt.Sprintf("%T", v)
}

// monitoringTypes are the keys rqlite's dashboards read in /status and
// their JSON types in rqlite (API.md 2.1: raft.* numbers are numbers,
// state a string, voter a bool).
var monitoringTypes = map[string]string{
	"store.dir":                       "string",
	"store.dir_size":                  "number",
	"store.snapshot_threshold":        "number",
	"store.snapshot_interval":         "string",
	"store.trailing_logs":             "number",
	"store.nodes":                     "array",
	"store.raft.state":                "string",
	"store.raft.term":                 "number",
	"store.raft.last_log_index":       "number",
	"store.raft.last_log_term":        "number",
	"store.raft.last_snapshot_index":  "number",
	"store.raft.last_snapshot_term":   "number",
	"store.raft.fsm_pending":          "number",
	"store.raft.commit_index":         "number",
	"store.raft.applied_index":        "number",
	"store.raft.voter":                "bool",
	"store.raft.num_peers":            "number",
	"store.raft.last_contact":         "string",
	"store.raft.latest_configuration": "string",
	"store.sqlite3.path":              "string",
	"store.sqlite3.db_size":           "number",
	"store.sqlite3.size":              "number",
	"store.sqlite3.wal_size":          "number",
	"store.sqlite3.version":           "string",
	"store.sqlite3.pragmas.ro":        "object",
	"store.sqlite3.pragmas.rw":        "object",
	// rqlite's tcp/mux.go Stats, all strings.
	"mux.addr":      "string",
	"mux.timeout":   "string",
	"mux.encrypted": "string",
}

// varsTypes are the /debug/vars counters (API.md 1.1, 2.1): all numbers.
var varsTypes = []string{
	"store.num_snapshots", "store.num_user_snapshots", "store.num_restores", "store.num_joins",
	"store.num_ignored_joins", "store.num_removed_before_joins",
	"http.user_snapshots", "http.user_reaps", "http.executions", "http.queries",
	"cluster.num_join_req", "cluster.num_remove_node_req", "cluster.num_get_node_api_req",
}

// checkMonitoringShape requires every monitoring key, with rqlite's type.
func checkMonitoringShape(t *testing.T, m *member) {
	t.Helper()
	st := getDoc(t, m, "/status")
	for path, want := range monitoringTypes {
		v, ok := st.at(path)
		if !ok || jsonKind(v) != want {
			t.Errorf("%s /status %s = %v (%s), want a %s (API.md 2.1)", m.id, path, v, jsonKind(v), want)
		}
	}
	for _, p := range []string{"store.sqlite3.pragmas.ro.journal_mode", "store.sqlite3.pragmas.rw.journal_mode"} {
		if v, _ := st.at(p); v != "wal" {
			t.Errorf("%s /status %s = %v, want \"wal\"", m.id, p, v)
		}
	}
	nodes, _ := st.at("store.nodes")
	list, _ := nodes.([]any)
	for _, n := range list {
		nd, _ := n.(map[string]any)
		if s := nd["suffrage"]; s != "voter" && s != "nonvoter" {
			t.Errorf("%s /status store.nodes: %v lacks suffrage voter|nonvoter", m.id, nd)
		}
	}
	vars := getDoc(t, m, "/debug/vars")
	for _, path := range varsTypes {
		if v, ok := vars.at(path); !ok || jsonKind(v) != "number" {
			t.Errorf("%s /debug/vars %s = %v (%s), want a number", m.id, path, v, jsonKind(v))
		}
	}
}

// waitDoc polls path on m until cond holds for its JSON, and returns it.
func waitDoc(t *testing.T, m *member, path, what string, cond func(jsonDoc) bool) jsonDoc {
	t.Helper()
	show := func(d jsonDoc) any {
		if path == "/debug/vars" {
			return jsonDoc{"store": d["store"], "http": d["http"], "cluster": d["cluster"]}
		}
		if st, ok := d["store"]; ok {
			return st
		}
		return d
	}
	deadline := time.Now().Add(catchUpTimeout)
	for {
		d := getDoc(t, m, path)
		if cond(d) {
			return d
		}
		if time.Now().After(deadline) {
			b, _ := json.Marshal(show(d))
			t.Fatalf("%s: %s never held within %s; last %s: %.2000s", m.id, what, catchUpTimeout, path, b)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestMonitoringFields: the /status and /debug/vars fields rqlite's
// dashboards read (API.md 2.1) are present with rqlite's names and JSON
// types on a real cluster, carry real values that move with what happens
// (writes, POST /snapshot, POST /reap, joins, a snapshot install), and
// answer ?key= subsetting.
func TestMonitoringFields(t *testing.T) {
	c := newCluster(t, 2)
	leader := c.leader
	f := others(c.ms, leader)[0]
	for _, m := range c.ms {
		checkMonitoringShape(t, m)
	}

	// Roles: Leader on the leader, Follower elsewhere; both voters, each
	// with one voting peer.
	for _, m := range c.ms {
		want := "Follower"
		if m == leader {
			want = "Leader"
		}
		waitDoc(t, m, "/status", "raft state "+want+", voter, num_peers 1", func(d jsonDoc) bool {
			st, _ := d.at("store.raft.state")
			v, _ := d.at("store.raft.voter")
			return st == want && v == true && d.num("store.raft.num_peers") == 1
		})
	}
	// ?key= subsetting reaches the new keys (API.md 2.1).
	wantOK(t, "status?key=store.raft.state on the leader", leader.get("/status?key=store.raft.state"), `"Leader"`)
	wantOK(t, "status?key=store.raft.state on the follower", f.get("/status?key=store.raft.state"), `"Follower"`)
	if r := leader.get("/status?key=store.sqlite3.pragmas.rw.journal_mode"); r.status != http.StatusOK || string(r.body) != `"wal"` {
		t.Errorf("status?key=store.sqlite3.pragmas.rw.journal_mode: %s", r)
	}

	// Writes move the log indexes on every node, and SQLite's files grow.
	before := map[string]jsonDoc{}
	for _, m := range c.ms {
		before[m.id] = getDoc(t, m, "/status")
	}
	wantOK(t, "CREATE TABLE", leader.execute(createT), `{"results":[{}]}`)
	var rs rows
	for i := range 5 {
		rs.insert(t, c.ms[i%2], fmt.Sprintf("row%d", i))
	}
	for _, m := range c.ms {
		b := before[m.id]
		d := waitDoc(t, m, "/status", "commit, applied and last log index moved past the writes", func(d jsonDoc) bool {
			for _, k := range []string{"commit_index", "applied_index", "last_log_index"} {
				if d.num("store.raft."+k) < b.num("store.raft."+k)+6 {
					return false
				}
			}
			return d.num("store.sqlite3.size") > 0
		})
		applied, commit, last := d.num("store.raft.applied_index"), d.num("store.raft.commit_index"), d.num("store.raft.last_log_index")
		if applied > commit || commit > last || d.num("store.raft.fsm_pending") != commit-applied {
			t.Errorf("%s: applied %v, commit %v, last log %v, fsm_pending %v: want applied <= commit <= last, pending = commit - applied",
				m.id, applied, commit, last, d.num("store.raft.fsm_pending"))
		}
		if d.num("store.raft.last_log_term") < 1 || d.num("store.raft.term") < 1 {
			t.Errorf("%s: last_log_term %v, term %v, want >= 1", m.id, d.num("store.raft.last_log_term"), d.num("store.raft.term"))
		}
		if d.num("store.sqlite3.db_size") <= 0 || d.num("store.sqlite3.wal_size") <= 0 || d.num("store.dir_size") <= 0 {
			t.Errorf("%s: db_size %v, wal_size %v, dir_size %v, want > 0", m.id,
				d.num("store.sqlite3.db_size"), d.num("store.sqlite3.wal_size"), d.num("store.dir_size"))
		}
	}

	// POST /snapshot: a snapshot is taken and counted, in store and http;
	// trailing_logs=0 compacts the whole log, so a joiner below needs the
	// snapshot streamed to it.
	vars := getDoc(t, leader, "/debug/vars")
	wantResp(t, "POST /snapshot?trailing_logs=0", leader.post("/snapshot?trailing_logs=0", ""), http.StatusOK, "")
	st := waitDoc(t, leader, "/status", "last_snapshot_index at the writes", func(d jsonDoc) bool {
		return d.num("store.raft.last_snapshot_index") >= d.num("store.raft.applied_index")-1 && d.num("store.raft.last_snapshot_term") >= 1
	})
	t.Logf("leader after /snapshot: last_snapshot_index %v, applied %v", st.num("store.raft.last_snapshot_index"), st.num("store.raft.applied_index"))
	waitDoc(t, leader, "/debug/vars", "num_snapshots and user snapshot counters moved", func(d jsonDoc) bool {
		return d.num("store.num_snapshots") == vars.num("store.num_snapshots")+1 &&
			d.num("store.num_user_snapshots") == vars.num("store.num_user_snapshots")+1 &&
			d.num("http.user_snapshots") == vars.num("http.user_snapshots")+1
	})
	// POST /reap is counted.
	if r := leader.post("/reap", ""); r.status != http.StatusOK {
		t.Fatalf("POST /reap: %s", r)
	}
	waitDoc(t, leader, "/debug/vars", "user_reaps moved", func(d jsonDoc) bool {
		return d.num("http.user_reaps") == vars.num("http.user_reaps")+1
	})

	// A join: the node that takes it counts the request and the join (a
	// retried attempt whose first try applied counts as ignored).
	vars = getDoc(t, leader, "/debug/vars")
	n3 := c.add("n3", "-join", leader.raftAddr)
	n3.start()
	n3.waitReady(clusterTimeout)
	c.waitMembers(c.ms, c.ids(), nil)
	waitDoc(t, leader, "/debug/vars", "num_join_req and num_joins moved", func(d jsonDoc) bool {
		return d.num("cluster.num_join_req") >= vars.num("cluster.num_join_req")+1 &&
			d.num("store.num_joins")+d.num("store.num_ignored_joins") >= vars.num("store.num_joins")+vars.num("store.num_ignored_joins")+1
	})
	// The log was compacted: the joiner was sent a snapshot and installed
	// it (store.num_restores).
	waitDoc(t, n3, "/debug/vars", "num_restores on the joiner", func(d jsonDoc) bool {
		return d.num("store.num_restores") >= 1
	})
	waitDoc(t, leader, "/status", "num_peers 2 on the leader", func(d jsonDoc) bool {
		return d.num("store.raft.num_peers") == 2
	})
	wantOK(t, "status?key=store.raft.state on the joiner", n3.get("/status?key=store.raft.state"), `"Follower"`)
	checkMonitoringShape(t, n3)

	// A join of a node already a member at that address is acknowledged
	// and counted as ignored, as rqlite counts it (API.md 5).
	var meta struct {
		ReplicaID uint64 `json:"replica_id"`
	}
	if r := n3.get("/skiff/node"); r.status != http.StatusOK || json.Unmarshal(r.body, &meta) != nil || meta.ReplicaID == 0 {
		t.Fatalf("n3 /skiff/node: %s", r)
	}
	rid := meta.ReplicaID
	vars = getDoc(t, leader, "/debug/vars")
	body := fmt.Sprintf(`{"id":"n3","addr":%q,"replica_id":%d}`, n3.raftAddr, rid)
	wantResp(t, "repeated join of n3", leader.post("/join", body), http.StatusOK, "")
	waitDoc(t, leader, "/debug/vars", "num_ignored_joins moved", func(d jsonDoc) bool {
		return d.num("store.num_ignored_joins") == vars.num("store.num_ignored_joins")+1 &&
			d.num("cluster.num_join_req") == vars.num("cluster.num_join_req")+1 &&
			d.num("store.num_joins") == vars.num("store.num_joins")
	})
	c.waitMembers(c.ms, c.ids(), nil)
}
