package test

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rqlite/gorqlite"
)

// TestGorqlite drives the node with gorqlite, a real rqlite client, over
// what API.md 4.1 lists as its needs: discovery through /status and /nodes,
// writes and reads with parameters, type fidelity (DATETIME as RFC3339,
// BOOLEAN as JSON booleans, TEXT in a BLOB column as a string, REAL exact),
// the unified endpoint, every consistency level, and transactions.
func TestGorqlite(t *testing.T) {
	n := newNode(t)
	n.start()
	n.waitReady(readyTimeout)

	client := &http.Client{Timeout: requestTimeout}
	t.Cleanup(client.CloseIdleConnections)
	conn, err := gorqlite.OpenWithClient("http://"+n.httpAddr+"/", client)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer conn.Close()

	// Discovery (API.md 4.1 items 1-2): store.leader.node_id from
	// /status, then api_addr of the reachable leader in /nodes.
	leader, err := conn.Leader()
	if err != nil || leader != n.httpAddr {
		t.Errorf("Leader() = %q, %v; want %q", leader, err, n.httpAddr)
	}
	peers, err := conn.Peers()
	if err != nil || len(peers) != 1 || peers[0] != n.httpAddr {
		t.Errorf("Peers() = %q, %v; want [%q]", peers, err, n.httpAddr)
	}

	// gorqlite's own tests run at level strong (API.md 4.1 item 3).
	if err := conn.SetConsistencyLevel(gorqlite.ConsistencyLevelStrong); err != nil {
		t.Fatal(err)
	}
	wr, err := conn.WriteOne("CREATE TABLE gq (id INTEGER NOT NULL PRIMARY KEY, name TEXT, wallet REAL, " +
		"bankrupt INTEGER, flag BOOLEAN, payload BLOB, ts DATETIME)")
	if err != nil || wr.Err != nil || wr.RowsAffected != 0 || wr.LastInsertID != 0 {
		t.Fatalf("CREATE TABLE: %+v, %v", wr, err)
	}
	if wr.Timing <= 0 {
		t.Errorf("CREATE TABLE: Timing %v; gorqlite asks for ?timings", wr.Timing)
	}

	// gorqlite sends a time.Time as JSON, i.e. RFC3339; it must come back
	// as the same instant in UTC, comparable with == (API.md 4.1 item 7:
	// gorqlite's tests compare with !=, so a Local time would fail them).
	meeting := time.Date(2424, 1, 2, 17, 0, 0, 0, time.UTC)
	wr, err = conn.WriteOneParameterized(gorqlite.ParameterizedStatement{
		Query:     "INSERT INTO gq(name, wallet, bankrupt, flag, payload, ts) VALUES(?, ?, ?, ?, ?, ?)",
		Arguments: []any{"Romulan", 123.456, 1, true, "payday", meeting},
	})
	if err != nil || wr.LastInsertID != 1 || wr.RowsAffected != 1 {
		t.Fatalf("INSERT Romulan: %+v, %v", wr, err)
	}
	// An integer Unix time in a DATETIME column is converted too (API.md
	// 1.5), as is SQLite's own text format.
	wr, err = conn.WriteOne("INSERT INTO gq(name, wallet, bankrupt, flag, ts) VALUES('Klingon', -1.5, 0, 0, 1700000000)")
	if err != nil || wr.LastInsertID != 2 || wr.RowsAffected != 1 {
		t.Fatalf("INSERT Klingon: %+v, %v", wr, err)
	}
	wr, err = conn.WriteOneParameterized(gorqlite.ParameterizedStatement{
		Query:     "INSERT INTO gq(name, ts) VALUES(:name, :ts)",
		Arguments: []any{map[string]any{"name": "Vulcan", "ts": "2024-02-29 23:59:58"}},
	})
	if err != nil || wr.LastInsertID != 3 || wr.RowsAffected != 1 {
		t.Fatalf("INSERT Vulcan (named parameters): %+v, %v", wr, err)
	}

	t.Run("QueryOne Scan", func(t *testing.T) {
		qr, err := conn.QueryOne("SELECT id, name, wallet, bankrupt, payload, ts FROM gq ORDER BY id")
		if err != nil {
			t.Fatalf("QueryOne: %v", err)
		}
		if got, want := strings.Join(qr.Types(), ","), "integer,text,real,integer,blob,datetime"; got != want {
			t.Errorf("Types() = %s, want %s (lower-cased declared types, API.md 1.4)", got, want)
		}
		if qr.NumRows() != 3 {
			t.Fatalf("NumRows() = %d, want 3", qr.NumRows())
		}
		type row struct {
			id       int64
			name     string
			wallet   float64
			bankrupt bool
			payload  gorqlite.NullString
			ts       time.Time
		}
		want := []row{
			{1, "Romulan", 123.456, true, gorqlite.NullString{String: "payday", Valid: true}, meeting},
			{2, "Klingon", -1.5, false, gorqlite.NullString{}, time.Date(2023, 11, 14, 22, 13, 20, 0, time.UTC)},
			{3, "Vulcan", 0, false, gorqlite.NullString{}, time.Date(2024, 2, 29, 23, 59, 58, 0, time.UTC)},
		}
		for i := 0; qr.Next(); i++ {
			var r row
			// bankrupt is INTEGER 0/1: gorqlite scans numbers into bool.
			if err := qr.Scan(&r.id, &r.name, &r.wallet, &r.bankrupt, &r.payload, &r.ts); err != nil {
				t.Fatalf("row %d: Scan: %v", i, err)
			}
			// != on purpose, as gorqlite's tests do: the location must
			// be UTC, not just the instant equal.
			if r != want[i] {
				t.Errorf("row %d: got %+v, want %+v", i, r, want[i])
			}
		}
	})

	t.Run("BOOLEAN", func(t *testing.T) {
		// A BOOLEAN column holding an integer is a JSON boolean on the
		// wire (API.md 1.5), so gorqlite hands out a Go bool. (Its Scan
		// into *bool reads only numbers and strings, with rqlite too.)
		qr, err := conn.QueryOne("SELECT id, flag FROM gq ORDER BY id")
		if err != nil {
			t.Fatalf("QueryOne: %v", err)
		}
		want := []any{true, false, nil}
		for i := 0; qr.Next(); i++ {
			m, err := qr.Map()
			if err != nil {
				t.Fatalf("Map: %v", err)
			}
			if m["flag"] != want[i] {
				t.Errorf("row %d: flag = %#v, want %#v", i, m["flag"], want[i])
			}
		}
		if got := qr.Types(); len(got) != 2 || got[1] != "boolean" {
			t.Errorf("Types() = %v, want [integer boolean]", got)
		}
	})

	t.Run("QueryOneParameterized", func(t *testing.T) {
		qr, err := conn.QueryOneParameterized(gorqlite.ParameterizedStatement{
			Query:     "SELECT name, ts FROM gq WHERE wallet > ? AND name = ?",
			Arguments: []any{100, "Romulan"},
		})
		if err != nil {
			t.Fatalf("QueryOneParameterized: %v", err)
		}
		if !qr.Next() {
			t.Fatal("no row")
		}
		var name string
		var ts time.Time
		if err := qr.Scan(&name, &ts); err != nil {
			t.Fatal(err)
		}
		if name != "Romulan" || ts != meeting {
			t.Errorf("got %q %v, want Romulan %v", name, ts, meeting)
		}
		if qr.Next() {
			t.Error("more than one row")
		}
		// An empty result still has columns and types (API.md 4.1
		// item 5: gorqlite type-asserts them).
		qr, err = conn.QueryOneParameterized(gorqlite.ParameterizedStatement{
			Query: "SELECT name FROM gq WHERE id = ?", Arguments: []any{99},
		})
		if err != nil || qr.NumRows() != 0 || len(qr.Columns()) != 1 || qr.Columns()[0] != "name" {
			t.Errorf("empty result: rows %d columns %v, %v", qr.NumRows(), qr.Columns(), err)
		}
	})

	t.Run("invalid query", func(t *testing.T) {
		qr, err := conn.QueryOne("INVALID QUERY")
		var se *gorqlite.StatementError
		if err == nil || !errors.As(err, &se) || !strings.Contains(se.Message, "syntax error") || qr.Err == nil {
			t.Errorf("QueryOne(INVALID QUERY): err %v, result err %v; want a syntax error", err, qr.Err)
		}
	})

	t.Run("Request", func(t *testing.T) {
		// The unified endpoint: gorqlite tells reads from writes by the
		// presence of columns (API.md 4.1 item 6).
		res, err := conn.RequestParameterized([]gorqlite.ParameterizedStatement{
			{Query: "INSERT INTO gq(name) VALUES(?)", Arguments: []any{"Ferengi"}},
			{Query: "SELECT COUNT(*) FROM gq"},
			{Query: "SELECT name FROM gq WHERE id = ?", Arguments: []any{4}},
		})
		if err != nil || len(res) != 3 {
			t.Fatalf("Request: %d results, %v", len(res), err)
		}
		if w := res[0].Write; w == nil || res[0].Query != nil || w.LastInsertID != 4 || w.RowsAffected != 1 {
			t.Errorf("result 0: %+v, want a write with last_insert_id 4", res[0])
		}
		if q := res[1].Query; q == nil || res[1].Write != nil || !q.Next() {
			t.Errorf("result 1: %+v, want a query with a row", res[1])
		} else {
			var count int64
			if err := q.Scan(&count); err != nil || count != 4 {
				t.Errorf("COUNT(*) = %d, %v; want 4 (the insert of the same request included)", count, err)
			}
		}
		if q := res[2].Query; q == nil || !q.Next() {
			t.Errorf("result 2: %+v, want a query with a row", res[2])
		} else if m, err := q.Map(); err != nil || m["name"] != "Ferengi" {
			t.Errorf("result 2: %v, %v; want Ferengi", m, err)
		}
		// A read-only request, and one with a failing statement.
		res, err = conn.Request([]string{"SELECT name FROM gq WHERE id = 1", "SELECT * FROM nope"})
		if err == nil || len(res) != 2 || res[0].Query == nil || res[1].Err == nil ||
			!strings.Contains(res[1].Err.Error(), "no such table: nope") {
			t.Errorf("Request with a bad statement: %+v, %v", res, err)
		}
	})

	t.Run("consistency levels", func(t *testing.T) {
		// gorqlite's level type is unexported; its parser hands one out.
		for i, name := range []string{"none", "weak", "linearizable", "strong"} {
			lvl, err := gorqlite.ParseConsistencyLevel(name)
			if err != nil {
				t.Fatal(err)
			}
			if err := conn.SetConsistencyLevel(lvl); err != nil {
				t.Fatal(err)
			}
			if got, _ := conn.ConsistencyLevel(); got != name {
				t.Fatalf("ConsistencyLevel() = %q after setting %q", got, name)
			}
			// A write, then a read at this level must see it: on a
			// single node every level is up to date.
			wr, err := conn.WriteOneParameterized(gorqlite.ParameterizedStatement{
				Query: "INSERT INTO gq(name) VALUES(?)", Arguments: []any{"level " + name},
			})
			if err != nil || wr.RowsAffected != 1 || wr.LastInsertID != int64(5+i) {
				t.Errorf("level %s: write %+v, %v", name, wr, err)
			}
			qr, err := conn.QueryOne("SELECT COUNT(*), MAX(name) FROM gq WHERE name LIKE 'level %'")
			if err != nil || !qr.Next() {
				t.Fatalf("level %s: query: %v", name, err)
			}
			var count int64
			var maxName string
			if err := qr.Scan(&count, &maxName); err != nil {
				t.Fatalf("level %s: %v", name, err)
			}
			if count != int64(i+1) {
				t.Errorf("level %s: %d rows, want %d", name, count, i+1)
			}
		}
	})

	t.Run("transaction", func(t *testing.T) {
		count := func() int64 {
			t.Helper()
			qr, err := conn.QueryOne("SELECT COUNT(*) FROM gq")
			if err != nil || !qr.Next() {
				t.Fatalf("count: %v", err)
			}
			var c int64
			if err := qr.Scan(&c); err != nil {
				t.Fatal(err)
			}
			return c
		}
		before := count()
		// gorqlite asks for ?transaction by default: the failing
		// statement stops the batch and rolls the first one back (API.md
		// 1.6, 4.1 item 8).
		batch := []string{"INSERT INTO gq(name) VALUES('Borg')", "CTHULHU", "INSERT INTO gq(name) VALUES('Q')"}
		res, err := conn.Write(batch)
		var se *gorqlite.StatementError
		if err == nil || !errors.As(err, &se) || !strings.Contains(se.Message, "syntax error") {
			t.Errorf("Write with CTHULHU: err %v, want a syntax error", err)
		}
		if len(res) != 2 || res[0].Err != nil || res[0].RowsAffected != 1 || res[1].Err == nil {
			t.Errorf("Write with CTHULHU in a transaction: %+v, want an insert then the error, and no third result", res)
		}
		if after := count(); after != before {
			t.Errorf("%d rows after the failed transaction, want %d (rolled back)", after, before)
		}
		// Without a transaction, processing goes on past the error.
		if err := conn.SetExecutionWithTransaction(false); err != nil {
			t.Fatal(err)
		}
		res, err = conn.Write(batch)
		if err == nil || len(res) != 3 || res[0].Err != nil || res[1].Err == nil || res[2].Err != nil {
			t.Errorf("Write with CTHULHU, no transaction: %+v, %v; want ok, error, ok", res, err)
		}
		if after := count(); after != before+2 {
			t.Errorf("%d rows after the batch without transaction, want %d", after, before+2)
		}
	})
}
