package sm

import (
	"fmt"
	"strings"
	"testing"

	sqlite3 "github.com/mattn/go-sqlite3"
	"google.golang.org/protobuf/proto"

	"github.com/skiffdb/skiff/sm/cmdpb"
)

// Client SQL that would reach outside the replicated file, or leave state on
// a connection that outlives the request, is refused on writes and reads.
func TestClientSQLThatEscapesTheFileIsRefused(t *testing.T) {
	h := newHarness(t)
	h.apply(cmd("a", false, "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"))
	for _, tc := range []struct {
		sql         string
		write, read bool // allowed as a write, as a read
	}{
		{"CREATE TEMP TABLE x (a)", false, false},
		{"CREATE TABLE temp.x (a)", false, false},
		{"CREATE TEMP VIEW v AS SELECT 1", false, false},
		{"CREATE TEMP TRIGGER tr AFTER UPDATE ON main.__skiff_meta BEGIN SELECT 1; END", false, false},
		// Skiff's own names: backups leave them out.
		{"CREATE TABLE __skiff_x (a)", false, false},
		{"CREATE VIEW __Skiff_v AS SELECT 1", false, false},
		{"CREATE INDEX __skiff_i ON t (v)", false, false},
		{"CREATE TRIGGER __skiff_tr AFTER INSERT ON t BEGIN SELECT 1; END", false, false},
		{"PRAGMA cache_size=1", false, false},
		{"PRAGMA recursive_triggers=1", false, false},
		{"PRAGMA ignore_check_constraints=1", false, false},
		{"PRAGMA max_page_count=1", false, false},
		{"PRAGMA defer_foreign_keys=ON", false, false},
		{"PRAGMA main.journal_mode=DELETE", false, false},
		{"PRAGMA wal_checkpoint", false, false},
		{"PRAGMA optimize", false, false},
		{"SELECT total_changes()", false, true},
		// Reads of settings and introspection are fine in writes; as a
		// query SQLite itself calls this one a write (as rqlite reports it).
		{"PRAGMA journal_mode", true, false},
		// A no-op inside the batch transaction; SQL dumps begin with it.
		{"PRAGMA foreign_keys=OFF", true, true}, // governs writes only
		{"PRAGMA foreign_keys", true, true},
		{"PRAGMA table_info(t)", true, true},
		{"PRAGMA integrity_check", true, true},
		{"PRAGMA user_version=7", true, false},
	} {
		w := h.apply(cmd("", false, tc.sql))[0].Results[0]
		if got := w.Error == ""; got != tc.write {
			t.Errorf("write %q: allowed=%v want %v (%q)", tc.sql, got, tc.write, w.Error)
		}
		r := h.query(tc.sql).Results[0]
		if got := r.Error == ""; got != tc.read {
			t.Errorf("read %q: allowed=%v want %v (%q)", tc.sql, got, tc.read, r.Error)
		}
	}
	// Nothing refused touched the applied index.
	if idx := h.s.Applied(); idx != h.next-1 {
		t.Fatalf("applied = %d, want %d", idx, h.next-1)
	}
}

// last_insert_rowid() and changes() are a function of the request on every
// replica, whatever Skiff's bookkeeping or a restart did to the connection.
func TestConnectionStateFunctionsAreDeterministic(t *testing.T) {
	a, b := newHarness(t), newHarness(t)
	steps := [][]byte{
		cmd("1", false, "CREATE TABLE t (id INTEGER PRIMARY KEY, v INTEGER, c INTEGER)"),
		cmd("2", false, "INSERT INTO t (id, v) VALUES (10, 0), (11, 0)"),
		cmd("3", false, "INSERT INTO t (v, c) VALUES (last_insert_rowid(), changes())"),
		cmd("4", false, "UPDATE t SET v = 1", "INSERT INTO t (v, c) VALUES (last_insert_rowid(), changes())"),
		cmd("5", false, "INSERT INTO t (v) VALUES (-1)", "INSERT INTO t (v, c) VALUES (last_insert_rowid(), changes())"),
	}
	for i, s := range steps {
		a.apply(s)
		b.apply(s)
		if i == 2 {
			// b restarts: its connection state starts over.
			_ = b.s.Close()
			b.open()
		}
	}
	q := "SELECT id, v, c FROM t ORDER BY id"
	ra, rb := a.query(q).Results[0], b.query(q).Results[0]
	if fmt.Sprint(ra.Rows) != fmt.Sprint(rb.Rows) {
		t.Fatalf("replicas differ:\n%v\n%v", ra.Rows, rb.Rows)
	}
	var got []string
	for _, r := range ra.Rows {
		got = append(got, fmt.Sprintf("%d:%d:%d", r.Values[0].GetI(), r.Values[1].GetI(), r.Values[2].GetI()))
	}
	// Request 3 starts from 0/0; request 4's UPDATE changed 3 rows and
	// inserted none (so rowid 0); request 5 sees its own INSERT (rowid 14).
	want := "10:1:0 11:1:0 12:1:0 13:0:3 14:-1:0 15:14:1"
	if strings.Join(got, " ") != want {
		t.Fatalf("rows = %s, want %s", strings.Join(got, " "), want)
	}
	dq := "SELECT idx, hex(response) FROM __skiff_dedup ORDER BY idx"
	if da, db := a.query(dq).Results[0], b.query(dq).Results[0]; fmt.Sprint(da.Rows) != fmt.Sprint(db.Rows) {
		t.Fatalf("remembered responses differ between replicas:\n%v\n%v", da.Rows, db.Rows)
	}
}

// A string of several statements: a write sent for its rows runs every
// statement and returns the last one's rows; a read returns the last one's
// rows and refuses any write among them.
func TestMultiStatementStrings(t *testing.T) {
	h := newHarness(t)
	h.apply(cmd("a", false, "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"))
	rows := func(id string, sql string, params ...*cmdpb.Parameter) *cmdpb.StatementResult {
		b, _ := proto.Marshal(&cmdpb.Command{Version: CommandVersion, RequestId: []byte(id), Type: cmdpb.Command_TYPE_EXECUTE,
			Request: &cmdpb.Request{Statements: []*cmdpb.Statement{{Sql: sql, ReturnsRows: true, Parameters: params}}}})
		return h.apply(b)[0].Results[0]
	}
	s := func(v string) *cmdpb.Parameter { return &cmdpb.Parameter{Value: &cmdpb.Parameter_S{S: v}} }
	r := rows("b", "INSERT INTO t (v) VALUES (?); INSERT INTO t (v) VALUES (?); SELECT COUNT(*), MAX(v) FROM t", s("x"), s("y"))
	if r.Error != "" || len(r.Rows) != 1 || r.Rows[0].Values[0].GetI() != 2 || r.Rows[0].Values[1].GetS() != "y" {
		t.Fatalf("write string ending in SELECT: %v", r)
	}
	r = rows("c", "INSERT INTO t (v) VALUES ('z') RETURNING id; -- trailing comment")
	if r.Error != "" || len(r.Rows) != 1 || r.Rows[0].Values[0].GetI() != 3 {
		t.Fatalf("RETURNING then a comment: %v", r)
	}
	r = rows("d", "SELECT 1; DELETE FROM t WHERE id = 1")
	if r.Error != "" || r.IsQuery || h.count("t") != 2 {
		t.Fatalf("write string ending in a write: %v (rows left %d)", r, h.count("t"))
	}
	for q, want := range map[string]string{
		"SELECT 1; SELECT 2":      "2",
		"SELECT 1; -- c":          "1",
		"SELECT 1; DELETE FROM t": ErrTextWriteViaQuery,
	} {
		r := h.query(q).Results[0]
		got := r.Error
		if got == "" && len(r.Rows) == 1 {
			got = fmt.Sprint(r.Rows[0].Values[0].GetI())
		}
		if got != want {
			t.Errorf("read %q = %q (%v), want %q", q, got, r, want)
		}
	}
	if h.count("t") != 2 {
		t.Fatalf("a read changed the table")
	}
}

// TestStmtTail pins the mattn field stmtTail reads.
func TestStmtTail(t *testing.T) {
	h := newHarness(t)
	ds, err := h.s.w.c.Prepare("SELECT 1;  SELECT 2 ")
	if err != nil {
		t.Fatal(err)
	}
	defer ds.Close()
	if got := stmtTail(ds.(*sqlite3.SQLiteStmt)); got != "SELECT 2" {
		t.Fatalf("tail = %q", got)
	}
}

// Strong reads go through the log but are not remembered; oversize
// RANDOMBLOB fails its statement instead of the node.
func TestReadsAreNotRememberedAndRandomBlobIsBounded(t *testing.T) {
	h := newHarness(t)
	b, _ := proto.Marshal(&cmdpb.Command{Version: CommandVersion, RequestId: []byte("q"), Type: cmdpb.Command_TYPE_QUERY,
		Request: &cmdpb.Request{Statements: stmts("SELECT 1")}})
	if r := h.apply(b)[0]; len(r.Results) != 1 || r.Results[0].Error != "" {
		t.Fatalf("strong read: %v", r)
	}
	if n := h.count("__skiff_dedup"); n != 0 {
		t.Fatalf("strong read remembered: %d rows", n)
	}
	r := h.apply(cmd("r", false, fmt.Sprintf("SELECT length(randomblob(%d))", maxRandomBlob+1)))[0].Results[0]
	if !strings.Contains(r.Error, "randomblob") {
		t.Fatalf("oversize randomblob: %v", r)
	}
}

// A trigger that reads connection state fires from a request whose own text
// never names it: the schema makes the request reset the state too.
func TestTriggerReadingConnectionStateIsDeterministic(t *testing.T) {
	a, b := newHarness(t), newHarness(t)
	steps := [][]byte{
		cmd("1", false, "CREATE TABLE t (id INTEGER PRIMARY KEY, v INTEGER)", "CREATE TABLE audit (n INTEGER, r INTEGER)",
			"CREATE TRIGGER tr AFTER INSERT ON t BEGIN INSERT INTO audit VALUES (changes(), last_insert_rowid()); END"),
		cmd("2", false, "INSERT INTO t (v) VALUES (1), (2)"),
		cmd("3", false, "UPDATE t SET v = v + 1"),
		cmd("4", false, "INSERT INTO t (v) VALUES (3)"),
	}
	for i, s := range steps {
		a.apply(s)
		b.apply(s)
		if i == 2 {
			_ = b.s.Close()
			b.open()
		}
	}
	q := "SELECT rowid, n, r FROM audit ORDER BY rowid"
	ra, rb := a.query(q).Results[0], b.query(q).Results[0]
	if len(ra.Rows) != 3 || fmt.Sprint(ra.Rows) != fmt.Sprint(rb.Rows) {
		t.Fatalf("replicas differ:\n%v\n%v", ra.Rows, rb.Rows)
	}
	if !mayReadConnState(stmts("SELECT Last_Insert_RowID()")) || mayReadConnState(stmts("INSERT INTO t (v) VALUES (1)")) {
		t.Fatal("mayReadConnState")
	}
}

// ALTER TABLE in all its forms is a client's to run (schema migrations
// rename tables and columns). RENAME makes SQLite edit the TEMP schema's
// triggers and views as well, which the TEMP refusal must not catch; Skiff's
// own tables stay out of reach.
func TestAlterTable(t *testing.T) {
	h := newHarness(t)
	h.apply(cmd("a", false,
		"CREATE TABLE t (id INTEGER PRIMARY KEY AUTOINCREMENT, a TEXT, b TEXT)",
		"CREATE INDEX t_b ON t (b)",
		"CREATE VIEW v AS SELECT id, b FROM t",
		"CREATE TABLE log (n TEXT)",
		"CREATE TRIGGER t_ins AFTER INSERT ON t BEGIN INSERT INTO log VALUES (new.b); END",
		"INSERT INTO t (a, b) VALUES ('a1', 'b1')"))
	for _, tc := range []struct {
		sql, wantErr string
	}{
		{"ALTER TABLE t RENAME COLUMN b TO c", ""},
		{"ALTER TABLE t RENAME TO u", ""},
		{"ALTER TABLE u ADD COLUMN d TEXT DEFAULT 'dd'", ""},
		{"ALTER TABLE u DROP COLUMN d", ""},
		{"INSERT INTO u (a, c) VALUES ('a2', 'b2')", ""},
		{"ALTER TABLE __skiff_meta RENAME TO m", "not authorized"},
		{"ALTER TABLE __skiff_meta ADD COLUMN x", "not authorized"},
		{"ALTER TABLE __skiff_meta RENAME COLUMN applied TO x", "not authorized"},
		{"ALTER TABLE u RENAME TO __skiff_u", "not authorized"},
		{`ALTER TABLE u RENAME TO "__SKIFF_u"`, "not authorized"},
		{"CREATE VIRTUAL TABLE __skiff_f USING fts4(x)", "not authorized"},
	} {
		if got := h.apply(cmd("", false, tc.sql))[0].Results[0].Error; got != tc.wantErr {
			t.Errorf("%q: error %q, want %q", tc.sql, got, tc.wantErr)
		}
	}
	for _, q := range []struct{ sql, want string }{
		{"SELECT id, a, c FROM u ORDER BY id", "1 a1 b1|2 a2 b2"},
		{"SELECT * FROM v ORDER BY id", "1 b1|2 b2"}, // the view follows both renames
		{"SELECT n FROM log", "b1|b2"},               // and so does the trigger
		{"SELECT name, seq FROM sqlite_sequence", "u 2"},
		{"SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'u'", "t_b"},
	} {
		r := h.query(q.sql).Results[0]
		if r.Error != "" {
			t.Fatalf("%q: %s", q.sql, r.Error)
		}
		var rows []string
		for _, row := range r.Rows {
			var vs []string
			for _, v := range row.Values {
				if _, ok := v.GetV().(*cmdpb.Value_S); ok {
					vs = append(vs, v.GetS())
				} else {
					vs = append(vs, fmt.Sprint(v.GetI()))
				}
			}
			rows = append(rows, strings.Join(vs, " "))
		}
		if got := strings.Join(rows, "|"); got != q.want {
			t.Errorf("%q = %q, want %q", q.sql, got, q.want)
		}
	}
	if r := h.query("ALTER TABLE u RENAME COLUMN a TO z").Results[0]; r.Error == "" {
		t.Errorf("ALTER TABLE as a read: allowed")
	}
}
