package sm

import (
	"testing"

	"github.com/skiffdb/skiff/sm/cmdpb"
)

func TestIsVacuum(t *testing.T) {
	for _, tc := range []struct {
		sql    string
		params int
		want   bool
	}{
		{"VACUUM", 0, true},
		{"  vacuum ;  ", 0, true},
		{"VACUUM main", 0, true},
		{`vacuum "main";`, 0, true},
		{"VACUUM temp", 0, false},
		{"VACUUM INTO '/tmp/x.db'", 0, false},
		{"VACUUM main INTO '/tmp/x.db'", 0, false},
		{"VACUUM; DELETE FROM t", 0, false},
		{"SELECT 'VACUUM'", 0, false},
		{"VACUUM", 1, false},
	} {
		st := &cmdpb.Statement{Sql: tc.sql}
		for range tc.params {
			st.Parameters = append(st.Parameters, &cmdpb.Parameter{})
		}
		if got := IsVacuum(&cmdpb.Request{Statements: []*cmdpb.Statement{st}}); got != tc.want {
			t.Errorf("IsVacuum(%q, %d params) = %v, want %v", tc.sql, tc.params, got, tc.want)
		}
	}
	if IsVacuum(&cmdpb.Request{Statements: stmts("VACUUM", "VACUUM")}) {
		t.Error("two statements counted as a VACUUM request")
	}
}

// A VACUUM entry runs between the batch's transactions (SQLite refuses it
// inside one): the entries before it are committed with their applied
// index, the space of deleted rows goes back to the file, the entries after
// it apply in a new transaction, and a retry under its request ID answers
// from the first.
func TestVacuumEntry(t *testing.T) {
	h := newHarness(t)
	h.apply(cmd("a", false, "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)",
		"WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 2000) INSERT INTO t (v) SELECT hex(randomblob(200)) FROM c"))
	h.apply(cmd("b", false, "DELETE FROM t WHERE id > 10"))
	free := func() int64 {
		t.Helper()
		return h.query("PRAGMA freelist_count").Results[0].Rows[0].Values[0].GetI()
	}
	if free() == 0 {
		t.Fatal("no free pages after the DELETE")
	}
	resps := h.apply(cmd("c", false, "INSERT INTO t (v) VALUES ('before')"), cmd("v", false, "VACUUM"),
		cmd("d", false, "INSERT INTO t (v) VALUES ('after')"))
	for i, r := range resps {
		if r.Error != "" || len(r.Results) != 1 || r.Results[0].Error != "" {
			t.Fatalf("entry %d: %v", i, r)
		}
	}
	if free() != 0 {
		t.Fatalf("freelist_count = %d after VACUUM", free())
	}
	if n := h.count("t"); n != 12 {
		t.Fatalf("rows = %d, want 12", n)
	}
	if idx := h.s.Applied(); idx != h.next-1 {
		t.Fatalf("applied = %d, want %d", idx, h.next-1)
	}
	again := h.apply(cmd("v", false, "VACUUM"))[0]
	if again.GetRaftIndex() != resps[1].GetRaftIndex() {
		t.Fatalf("retried VACUUM answered index %d, want the first's %d", again.GetRaftIndex(), resps[1].GetRaftIndex())
	}
	// Only a plain VACUUM leaves the transaction; VACUUM INTO would write
	// a file on every node, and stays refused.
	if r := h.apply(cmd("", false, "VACUUM INTO 'copy.db'"))[0].Results[0]; r.Error == "" {
		t.Fatal("VACUUM INTO allowed")
	}
	// The node restarts on what was committed: the applied index stored
	// with the last transaction, every entry there once.
	want := h.next - 1
	_ = h.s.Close()
	if idx := h.open(); idx != want {
		t.Fatalf("stored applied index = %d, want %d", idx, want)
	}
	if n := h.count("t"); n != 12 {
		t.Fatalf("rows after reopen = %d, want 12", n)
	}
}

// Every write is asked whether it is a VACUUM: the answer for an INSERT
// costs no allocation.
func TestIsVacuumAllocations(t *testing.T) {
	req := &cmdpb.Request{Statements: stmts("INSERT INTO bench(v) VALUES(?)")}
	if n := testing.AllocsPerRun(100, func() { IsVacuum(req) }); n != 0 {
		t.Fatalf("IsVacuum allocates %.0f times for an INSERT", n)
	}
}
