package test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/skiffdb/skiff/test/testdb"
)

// A SQL dump (API.md 1.10, fmt=sql) restores virtual tables: full-text
// search (FTS4, and FTS5 as rqlite's SQLite has it) and R*Tree keep their
// rows, rowids and indexes when the dump is loaded into another node
// (API.md 1.11, a SQL text /db/load).
func TestSQLDumpRestoresVirtualTables(t *testing.T) {
	src := newNode(t)
	src.start()
	src.waitReady(readyTimeout)
	wantOK(t, "setup", src.execute(`["CREATE VIRTUAL TABLE docs USING fts4(title, body)", "INSERT INTO docs (docid, title, body) VALUES (7, 'seven', 'hello world'), (42, 'forty-two', 'goodbye moon')", "CREATE VIRTUAL TABLE notes USING fts5(body)", "INSERT INTO notes (rowid, body) VALUES (5, 'raft keeps replicas identical')", "CREATE VIRTUAL TABLE boxes USING rtree(id, minx, maxx)", "INSERT INTO boxes VALUES (3, 1.5, 2.5)"]`),
		// SQLite's own counters: creating an FTS5 or R*Tree table writes rows of
		// its shadow tables.
		`{"results":[{},{"last_insert_id":42,"rows_affected":2},{"last_insert_id":10,"rows_affected":1},{"last_insert_id":5,"rows_affected":1},{"last_insert_id":1,"rows_affected":1},{"last_insert_id":3,"rows_affected":1}]}`)
	dump := src.get("/db/backup?fmt=sql")
	// The shadow tables are filled, not created: CREATE VIRTUAL TABLE
	// makes them.
	if dump.status != http.StatusOK || strings.Contains(string(dump.body), "CREATE TABLE 'docs_content'") ||
		!strings.Contains(string(dump.body), `DELETE FROM "docs_content";`) {
		t.Fatalf("dump: %d\n%s", dump.status, dump.body)
	}

	dst := newNode(t)
	dst.start()
	dst.waitReady(readyTimeout)
	if r := dst.postType("/db/load", "text/plain", string(dump.body)); r.status != http.StatusOK || strings.Contains(string(r.body), "error") {
		t.Fatalf("load: %d %s", r.status, r.body)
	}
	for _, n := range []*node{src, dst} {
		wantOK(t, "fts4", n.query("SELECT docid, title FROM docs WHERE docs MATCH 'moon'"),
			`{"results":[{"columns":["docid","title"],"types":["integer","text"],"values":[[42,"forty-two"]]}]}`)
		wantOK(t, "fts5", n.query("SELECT rowid, body FROM notes WHERE notes MATCH 'replicas'"),
			`{"results":[{"columns":["rowid","body"],"types":["integer","text"],"values":[[5,"raft keeps replicas identical"]]}]}`)
		wantOK(t, "rtree", n.query("SELECT id, maxx FROM boxes WHERE minx < 2"),
			`{"results":[{"columns":["id","maxx"],"types":["int","real"],"values":[[3,2.5]]}]}`)
	}
	if again := dst.get("/db/backup?fmt=sql"); string(again.body) != string(dump.body) {
		t.Fatalf("the loaded node dumps differently:\n got %s\nwant %s", again.body, dump.body)
	}
}

// A binary /db/load on a cluster (API.md 1.11) goes through the log as the
// file's SQL dump, so a SQLite file with full-text and R*Tree tables,
// the usual way into Skiff from rqlite or an application's own file,
// arrives whole on every node.
func TestBinaryLoadOfVirtualTablesOnThreeNodes(t *testing.T) {
	c := newCluster(t, 3)
	file := testdb.FileOf(t,
		"CREATE VIRTUAL TABLE notes USING fts5(body)",
		"INSERT INTO notes (rowid, body) VALUES (5, 'raft keeps replicas identical'), (6, 'sqlite on every node')",
		"CREATE VIRTUAL TABLE boxes USING rtree(id, minx, maxx)",
		"INSERT INTO boxes VALUES (3, 1.5, 2.5)")
	wantOK(t, "POST /db/load", c.leader.postType("/db/load", "application/octet-stream", string(file)), `{"results":[]}`)
	for _, m := range c.ms {
		for q, want := range map[string]string{
			"SELECT rowid, body FROM notes WHERE notes MATCH 'replicas'": `{"results":[{"columns":["rowid","body"],"types":["integer","text"],"values":[[5,"raft keeps replicas identical"]]}]}`,
			"SELECT id, maxx FROM boxes WHERE minx < 2":                  `{"results":[{"columns":["id","maxx"],"types":["int","real"],"values":[[3,2.5]]}]}`,
		} {
			waitAnswer(t, m.node, q, "level=none", want)
		}
	}
}
