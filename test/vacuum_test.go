package test

import (
	"testing"
	"time"
)

// VACUUM through /db/execute and /db/request (as rqlite runs it, outside
// any transaction): the space of deleted rows goes back to the file, the
// rows stay, and VACUUM INTO, which would write a file on every node, is
// refused.
func TestVacuum(t *testing.T) {
	n := newNode(t)
	n.start()
	n.waitReady(readyTimeout)
	wantOK(t, "fill", n.execute(`["CREATE TABLE big (id INTEGER PRIMARY KEY, v TEXT)", "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 2000) INSERT INTO big (v) SELECT printf('%0400d', x) FROM c", "DELETE FROM big WHERE id > 5"]`),
		`{"results":[{},{"last_insert_id":2000,"rows_affected":2000},{"last_insert_id":2000,"rows_affected":1995}]}`)
	wantOK(t, "VACUUM", n.execute(`["VACUUM"]`), `{"results":[{}]}`)
	wantOK(t, "freelist after VACUUM", n.query("PRAGMA freelist_count"),
		`{"results":[{"columns":["freelist_count"],"types":["integer"],"values":[[0]]}]}`)
	wantOK(t, "rows kept", n.query("SELECT COUNT(*) FROM big"),
		`{"results":[{"columns":["COUNT(*)"],"types":["integer"],"values":[[5]]}]}`)
	wantOK(t, "VACUUM via /db/request", n.post("/db/request", `["VACUUM main;"]`), `{"results":[{}]}`)
	wantOK(t, "VACUUM INTO", n.execute(`["VACUUM INTO 'copy.db'"]`), `{"results":[{"error":"cannot VACUUM from within a transaction"}]}`)
}

// -auto-vacuum-int (API.md 5): the leader VACUUMs through the log once it
// has led that long, and again every interval.
func TestAutoVacuum(t *testing.T) {
	n := newNode(t)
	n.args = []string{"-auto-vacuum-int", "1s"}
	n.start()
	n.waitReady(readyTimeout)
	wantOK(t, "fill", n.execute(`["CREATE TABLE big (id INTEGER PRIMARY KEY, v TEXT)", "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 2000) INSERT INTO big (v) SELECT printf('%0400d', x) FROM c", "DELETE FROM big WHERE id > 5"]`),
		`{"results":[{},{"last_insert_id":2000,"rows_affected":2000},{"last_insert_id":2000,"rows_affected":1995}]}`)
	waitAnswer(t, n, "PRAGMA freelist_count", "level=none",
		`{"results":[{"columns":["freelist_count"],"types":["integer"],"values":[[0]]}]}`)
	wantOK(t, "rows kept", n.query("SELECT COUNT(*) FROM big"),
		`{"results":[{"columns":["COUNT(*)"],"types":["integer"],"values":[[5]]}]}`)
	if !n.logContains(n.proc.logPath, "automatic VACUUM done") {
		t.Fatal("the log does not report the automatic VACUUM")
	}
}

// VACUUM renumbers the rowids of a table without an INTEGER PRIMARY KEY;
// through the log, every node renumbers them alike, so a later write by
// rowid changes the same row everywhere.
func TestVacuumClusterRowids(t *testing.T) {
	c := newCluster(t, 3)
	l := c.leader
	wantOK(t, "fill", l.execute(`["CREATE TABLE norid (v TEXT)", "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 10) INSERT INTO norid (v) SELECT 'r' || x FROM c", "DELETE FROM norid WHERE rowid % 2 = 0"]`),
		`{"results":[{},{"last_insert_id":10,"rows_affected":10},{"last_insert_id":10,"rows_affected":5}]}`)
	wantOK(t, "VACUUM", l.execute(`["VACUUM"]`), `{"results":[{}]}`)
	wantOK(t, "UPDATE by rowid", l.execute(`["UPDATE norid SET v = 'two' WHERE rowid = 2"]`),
		`{"results":[{"last_insert_id":10,"rows_affected":1}]}`)
	const want = `{"results":[{"columns":["rowid","v"],"types":["integer","text"],"values":[[1,"r1"],[2,"two"],[3,"r5"],[4,"r7"],[5,"r9"]]}]}`
	for _, m := range c.ms {
		waitAnswer(t, m.node, "SELECT rowid, v FROM norid ORDER BY rowid", "level=none", want)
	}
}

// waitAnswer polls q on n at level until it answers exactly want, within
// catchUpTimeout (a node applies what the leader acknowledged a moment
// later).
func waitAnswer(t *testing.T, n *node, q, level, want string) {
	t.Helper()
	var got string
	for deadline := time.Now().Add(catchUpTimeout); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if got = string(n.query(q, level).body); got == want {
			return
		}
	}
	t.Errorf("%q within %s: %s\nwant %s", q, catchUpTimeout, got, want)
}
