package sm

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/skiffdb/skiff/sm/cmdpb"
)

// vtabRoundTrip checks that a SQL dump of virtual tables (full-text search,
// R*Tree) restores them exactly: the dump creates each virtual table and
// then fills the shadow tables SQLite keeps its data in (emptied first of
// what the CREATE put there), so rowids, contentless and external-content
// indexes come back as they were. The dump loads into plain SQLite and
// through a replacing load, and the loaded database dumps to the same text.
func vtabRoundTrip(t *testing.T, setup []string, checks map[string]string) {
	t.Helper()
	src := newHarness(t)
	if r := src.apply(cmd("a", false, setup...))[0]; r.Error != "" {
		t.Fatalf("setup: %s", r.Error)
	} else {
		for i, res := range r.Results {
			if res.Error != "" {
				t.Fatalf("setup %q: %s", setup[i], res.Error)
			}
		}
	}
	dump := string(backupOf(t, src, &Backup{Format: BackupSQL}))
	shadows := src.query("SELECT name FROM pragma_table_list WHERE type = 'shadow'").Results[0].Rows
	if len(shadows) == 0 {
		t.Fatal("no shadow tables in the source")
	}
	for _, row := range shadows {
		name := row.Values[0].GetS()
		for _, l := range strings.Split(dump, "\n") {
			if strings.HasPrefix(l, "CREATE TABLE") && strings.Contains(l, name) {
				t.Fatalf("dump creates shadow table %s itself (CREATE VIRTUAL TABLE does):\n%s", name, dump)
			}
		}
		if !strings.Contains(dump, "DELETE FROM "+quoteIdent(name)+";") {
			t.Fatalf("dump does not empty shadow table %s before filling it:\n%s", name, dump)
		}
	}
	check := func(name string, query func(string) string) {
		t.Helper()
		for q, want := range checks {
			if got := query(q); got != want {
				t.Errorf("%s: %q = %q, want %q", name, q, got, want)
			}
		}
	}
	check("source", func(q string) string { return rowsText(t, src.query(q).Results[0]) })

	db := openSQLite(t, filepath.Join(t.TempDir(), "load.sqlite"))
	if _, err := db.Exec(dump); err != nil {
		t.Fatalf("loading the dump into SQLite: %v\n%s", err, dump)
	}
	check("plain SQLite", func(q string) string {
		rows, err := db.Query(q)
		if err != nil {
			t.Fatalf("%q: %v", q, err)
		}
		defer rows.Close()
		var out []string
		for rows.Next() {
			var a, b any
			if err := rows.Scan(&a, &b); err != nil {
				t.Fatal(err)
			}
			out = append(out, strings.TrimSpace(strings.Join([]string{text(a), text(b)}, " ")))
		}
		return strings.Join(out, "|")
	})

	dst := newHarness(t)
	dst.apply(cmd("b", false, "CREATE VIRTUAL TABLE old USING fts4(x)", "INSERT INTO old VALUES ('gone')"))
	b, _ := proto.Marshal(&cmdpb.Command{Version: CommandVersion, RequestId: []byte("load"), Type: cmdpb.Command_TYPE_EXECUTE,
		Request: &cmdpb.Request{Statements: stmts(stripTxControl(dump)), Transaction: true, ReplaceAll: true}})
	if r := dst.apply(b)[0]; r.Error != "" || r.Results[0].Error != "" {
		t.Fatalf("replacing load: %v", r)
	}
	check("replacing load", func(q string) string { return rowsText(t, dst.query(q).Results[0]) })
	if got := string(backupOf(t, dst, &Backup{Format: BackupSQL})); got != dump {
		t.Fatalf("dump after load differs:\n got %s\nwant %s", got, dump)
	}
}

func text(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case []byte:
		return string(x)
	case string:
		return x
	}
	return fmt.Sprint(v)
}

// rowsText renders a two-column result as "a b|a b".
func rowsText(t *testing.T, r *cmdpb.StatementResult) string {
	t.Helper()
	if r.Error != "" {
		t.Fatalf("query: %s", r.Error)
	}
	var out []string
	for _, row := range r.Rows {
		var vs []string
		for _, v := range row.Values {
			switch x := v.GetV().(type) {
			case *cmdpb.Value_S:
				vs = append(vs, x.S)
			case *cmdpb.Value_I:
				vs = append(vs, fmt.Sprint(x.I))
			case *cmdpb.Value_D:
				vs = append(vs, fmt.Sprint(x.D))
			}
		}
		out = append(out, strings.Join(vs, " "))
	}
	return strings.Join(out, "|")
}

func TestBackupSQLDumpVirtualTables(t *testing.T) {
	vtabRoundTrip(t, []string{
		"CREATE VIRTUAL TABLE docs USING fts4(title, body)",
		"INSERT INTO docs (docid, title, body) VALUES (7, 'seven', 'hello world'), (42, 'forty-two', 'goodbye moon')",
		"CREATE VIRTUAL TABLE boxes USING rtree(id, minx, maxx)",
		"INSERT INTO boxes VALUES (3, 1.5, 2.5), (9, 10, 20)",
		"CREATE TABLE plain (x)", "INSERT INTO plain VALUES ('p')",
		`CREATE VIRTUAL TABLE lang USING fts4(body, languageid="lid")`,
		"INSERT INTO lang (docid, body, lid) VALUES (4, 'bonjour monde', 2)",
		"CREATE VIRTUAL TABLE nl\nUSING fts4(body)", "INSERT INTO nl (docid, body) VALUES (9, 'split line')",
		"CREATE VIRTUAL TABLE aux USING fts4aux(docs)",
	}, map[string]string{
		"SELECT docid, lid FROM lang WHERE lang MATCH 'bonjour' AND lid = 2": "4 2",
		"SELECT docid, body FROM nl WHERE nl MATCH 'split'":                  "9 split line",
		"SELECT term, documents FROM aux WHERE term = 'moon' AND col = '*'":  "moon 1",
		"SELECT docid, title FROM docs WHERE docs MATCH 'moon'":              "42 forty-two",
		"SELECT rowid, body FROM docs WHERE docs MATCH 'hello'":              "7 hello world",
		"SELECT id, maxx FROM boxes WHERE minx >= 5":                         "9 20",
		"SELECT id, minx FROM boxes ORDER BY id":                             "3 1.5|9 10",
		"SELECT rowid, x FROM plain":                                         "1 p",
	})
}
