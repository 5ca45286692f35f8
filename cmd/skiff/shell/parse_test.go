package shell

import (
	"reflect"
	"testing"
)

func TestSplitter(t *testing.T) {
	for _, tc := range []struct {
		name    string
		lines   []string
		want    []Input
		pending bool
	}{
		{"one statement", []string{"SELECT 1;"}, []Input{{SQL: "SELECT 1"}}, false},
		{"no semicolon yet", []string{"SELECT 1"}, nil, true},
		{"multi-line", []string{"INSERT INTO t", "VALUES (1),", "  (2);"},
			[]Input{{SQL: "INSERT INTO t\nVALUES (1),\n  (2)"}}, false},
		{"two on a line", []string{"SELECT 1; SELECT 2;"}, []Input{{SQL: "SELECT 1"}, {SQL: "SELECT 2"}}, false},
		{"one and a half", []string{"SELECT 1; SELECT"}, []Input{{SQL: "SELECT 1"}}, true},
		{"semicolon in string", []string{"INSERT INTO t VALUES('a;b');"}, []Input{{SQL: "INSERT INTO t VALUES('a;b')"}}, false},
		{"escaped quote", []string{"SELECT 'it''s;';"}, []Input{{SQL: "SELECT 'it''s;'"}}, false},
		{"open string spans lines", []string{"SELECT 'a;", "b';"}, []Input{{SQL: "SELECT 'a;\nb'"}}, false},
		{"quoted identifiers", []string{`SELECT "a;b", [c;d], ` + "`e;f`" + ` FROM t;`},
			[]Input{{SQL: `SELECT "a;b", [c;d], ` + "`e;f`" + ` FROM t`}}, false},
		{"line comment", []string{"SELECT 1 -- not; the end", ";"}, []Input{{SQL: "SELECT 1 -- not; the end"}}, false},
		{"block comment", []string{"SELECT /* ; */ 1;"}, []Input{{SQL: "SELECT /* ; */ 1"}}, false},
		{"comment only", []string{"-- just a comment"}, nil, false},
		{"trailing comment", []string{"SELECT 1; -- done"}, []Input{{SQL: "SELECT 1"}}, false},
		{"empty statements", []string{";;", " ; "}, nil, false},
		{"trigger body", []string{"CREATE TRIGGER tr AFTER INSERT ON t BEGIN", "  INSERT INTO u VALUES(1);", "  UPDATE u SET x=2;", "END;"},
			[]Input{{SQL: "CREATE TRIGGER tr AFTER INSERT ON t BEGIN\n  INSERT INTO u VALUES(1);\n  UPDATE u SET x=2;\nEND"}}, false},
		{"temp trigger pending", []string{"create temp trigger tr after insert on t begin select 1;"}, nil, true},
		{"dot command", []string{".tables"}, []Input{{Kind: KindDot, Cmd: "tables", Args: []string{}}}, false},
		{"dot command args", []string{"  .DUMP out.sql foo bar "}, []Input{{Kind: KindDot, Cmd: "dump", Args: []string{"out.sql", "foo", "bar"}}}, false},
		{"dot inside statement is SQL", []string{"SELECT", ".5;"}, []Input{{SQL: "SELECT\n.5"}}, false},
		{"bare quit", []string{"quit"}, []Input{{Kind: KindDot, Cmd: "exit"}}, false},
		{"EXIT;", []string{"EXIT;"}, []Input{{Kind: KindDot, Cmd: "exit"}}, false},
		{"unicode", []string{"SELECT '日本;語';"}, []Input{{SQL: "SELECT '日本;語'"}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var sp Splitter
			var got []Input
			for _, l := range tc.lines {
				got = append(got, sp.Feed(l)...)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("inputs:\n got %#v\nwant %#v", got, tc.want)
			}
			if sp.Pending() != tc.pending {
				t.Errorf("pending = %v, want %v", sp.Pending(), tc.pending)
			}
		})
	}
}

func TestSplitterReset(t *testing.T) {
	var sp Splitter
	sp.Feed("SELECT")
	sp.Reset()
	if sp.Pending() {
		t.Fatal("pending after Reset")
	}
	if got := sp.Feed(".tables"); len(got) != 1 || got[0].Kind != KindDot {
		t.Fatalf("after Reset a dot command is one: %#v", got)
	}
}
