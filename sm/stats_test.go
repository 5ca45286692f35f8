package sm

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"testing"

	sqlite3 "github.com/mattn/go-sqlite3"
)

// pragmaValue reads one PRAGMA as text, the way rqlite reports it.
func pragmaValue(t *testing.T, c *sqlite3.SQLiteConn, name string) string {
	t.Helper()
	rows, err := c.QueryContext(context.Background(), "PRAGMA "+name, nil)
	if err != nil {
		t.Fatalf("PRAGMA %s: %v", name, err)
	}
	defer rows.Close()
	dest := make([]driver.Value, 1)
	if err := rows.Next(dest); err != nil && !errors.Is(err, io.EOF) {
		t.Fatalf("PRAGMA %s: %v", name, err)
	}
	switch v := dest[0].(type) {
	case []byte:
		return string(v)
	default:
		return fmt.Sprint(v)
	}
}

// Pragmas must describe what the connections really run with (API.md 2.1,
// store.sqlite3.pragmas): each value is read back from SQLite.
func TestPragmasMatchConnections(t *testing.T) {
	h := newHarness(t)
	for _, fk := range []bool{false, true} {
		rwWant, roWant := Pragmas(fk)
		w, err := openWriter(h.s.path, fk)
		if err != nil {
			t.Fatal(err)
		}
		r, err := openReader(h.s.path, fk, false)
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			name string
			c    *sqlite3.SQLiteConn
			want map[string]string
		}{{"rw", w, rwWant}, {"ro", r, roWant}} {
			for k, v := range tc.want {
				if got := pragmaValue(t, tc.c, k); got != v {
					t.Errorf("fk=%v %s: PRAGMA %s = %q, Pragmas says %q", fk, tc.name, k, got, v)
				}
			}
		}
		_ = r.Close()
		_ = w.Close()
	}
}

// DBStats answers page_count*page_size and the live path; it grows with
// the data (rqlite's sqlite3.size).
func TestDBStatsAndLivePath(t *testing.T) {
	h := newHarness(t)
	stats := func() *DBStatsResult {
		out, err := h.s.Lookup(&DBStats{Ctx: context.Background()})
		if err != nil {
			t.Fatal(err)
		}
		return out.(*DBStatsResult)
	}
	before := stats()
	if before.Path != filepath.Join(h.dir, dbName(1)) || before.Size <= 0 {
		t.Fatalf("DBStats = %+v", before)
	}
	if got := LivePath(h.dir); got != before.Path {
		t.Fatalf("LivePath = %q, want %q", got, before.Path)
	}
	if got := LivePath(t.TempDir()); got != "" {
		t.Fatalf("LivePath of an empty directory = %q", got)
	}
	h.apply(cmd("a", false, "CREATE TABLE t (x TEXT)", "INSERT INTO t VALUES (zeroblob(100000))"))
	if after := stats(); after.Size <= before.Size {
		t.Fatalf("size %d after writing 100 kB, %d before", after.Size, before.Size)
	}
	_ = h.s.Close()
	if _, err := h.s.Lookup(&DBStats{}); !errors.Is(err, ErrClosed) {
		t.Fatalf("after Close: %v", err)
	}
}
