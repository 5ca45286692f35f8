package test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"testing"
)

// TestTransactionAndMixedForms covers the request body forms of API.md 1.3,
// the transaction semantics of 1.6, and the response shapes and flags of
// 1.2 and 1.4 (associative, timings, raft_index, pretty), byte for byte
// where API.md gives the bytes.
func TestTransactionAndMixedForms(t *testing.T) {
	n := newNode(t)
	n.start()
	n.waitReady(readyTimeout)

	wantOK(t, "CREATE TABLE foo", n.execute(`["CREATE TABLE foo (id INTEGER NOT NULL PRIMARY KEY, name TEXT, age INTEGER)"]`),
		`{"results":[{}]}`)

	t.Run("body forms", func(t *testing.T) {
		n := n.on(t)
		// 1. Plain SQL array.
		wantOK(t, "plain strings", n.execute(`["INSERT INTO foo(name, age) VALUES(\"fiona\", 20)", "INSERT INTO foo(name, age) VALUES('declan', 30)"]`),
			`{"results":[{"last_insert_id":1,"rows_affected":1},{"last_insert_id":2,"rows_affected":1}]}`)
		// 2. Positional parameters.
		wantOK(t, "positional", n.execute(`[["INSERT INTO foo(name, age) VALUES(?, ?)", "sinead", 25]]`),
			`{"results":[{"last_insert_id":3,"rows_affected":1}]}`)
		// 3. Named parameters.
		wantOK(t, "named", n.execute(`[["INSERT INTO foo(name, age) VALUES(:name, :age)", {"name": "niamh", "age": 40}]]`),
			`{"results":[{"last_insert_id":4,"rows_affected":1}]}`)
		// Mixed, as e2e test_simple_parameterized_mixed_queries.
		wantOK(t, "mixed arrays", n.execute(`[["INSERT INTO foo(name, age) VALUES(?,?)", "fiona", 20], ["INSERT INTO foo(name, age) VALUES(\"sinead\", 25)"]]`),
			`{"results":[{"last_insert_id":5,"rows_affected":1},{"last_insert_id":6,"rows_affected":1}]}`)
		// Bare strings next to arrays: three results.
		wantOK(t, "mixed arrays and strings", n.execute(`[["INSERT INTO foo(name, age) VALUES(?,?)", "aoife", 1], ["INSERT INTO foo(name, age) VALUES(:n, :a)", {"n": "ciara", "a": 2}], "INSERT INTO nonsense VALUES(1)"]`),
			`{"results":[{"last_insert_id":7,"rows_affected":1},{"last_insert_id":8,"rows_affected":1},{"error":"no such table: nonsense"}]}`)
		// 4. text/plain: the whole body is one statement.
		wantOK(t, "text/plain", n.postType("/db/execute", "text/plain", `INSERT INTO foo(name, age) VALUES("text", 50)`),
			`{"results":[{"last_insert_id":9,"rows_affected":1}]}`)
		// Parameter typing (API.md 1.3): float, bool, blob array, hex
		// blob, text, null. Expressions have no declared type, so the
		// first row's values fill the types (API.md 1.4), up to the NULL.
		wantOK(t, "typed parameters", n.post("/db/query", `[["SELECT ? AS f, ? AS b, typeof(?) AS blob, hex(?) AS hex, ? AS s, ? AS n", 1.5, true, [222,173,190,239], "x'CAFE'", "plain", null]]`),
			`{"results":[{"columns":["f","b","blob","hex","s","n"],"types":["real","integer","text","text","text",""],"values":[[1.5,1,"blob","CAFE","plain",null]]}]}`)
		// Reads take the same forms.
		wantOK(t, "query forms", n.post("/db/query", `[["SELECT name, age FROM foo WHERE id = ?", 2], ["SELECT name FROM foo WHERE name = :n", {"n": "niamh"}], "SELECT COUNT(*) FROM foo"]`),
			`{"results":[{"columns":["name","age"],"types":["text","integer"],"values":[["declan",30]]},{"columns":["name"],"types":["text"],"values":[["niamh"]]},{"columns":["COUNT(*)"],"types":["integer"],"values":[[9]]}]}`)
		wantOK(t, "query text/plain", n.postType("/db/query", "text/plain", `SELECT name FROM foo WHERE id = 9`),
			`{"results":[{"columns":["name"],"types":["text"],"values":[["text"]]}]}`)
	})

	t.Run("transaction", func(t *testing.T) {
		n := n.on(t)
		// The API.md 1.6 example: two rows exist, so "INSERT a" gets id 3.
		wantOK(t, "setup", n.execute(`["CREATE TABLE tx (id INTEGER NOT NULL PRIMARY KEY, name TEXT)", "INSERT INTO tx(name) VALUES(\"x\")", "INSERT INTO tx(name) VALUES(\"y\")"]`),
			`{"results":[{"last_insert_id":9,"rows_affected":1},{"last_insert_id":1,"rows_affected":1},{"last_insert_id":2,"rows_affected":1}]}`)
		const batch = `["INSERT INTO tx(name) VALUES(\"a\")", "INSERT INTO nope VALUES(1)", "INSERT INTO tx(name) VALUES(\"b\")"]`
		// With ?transaction: stop at the first error, roll back, return
		// the results so far (including the rolled-back success).
		wantOK(t, "with ?transaction", n.post("/db/execute?transaction", batch),
			`{"results":[{"last_insert_id":3,"rows_affected":1},{"error":"no such table: nope"}]}`)
		wantOK(t, "rolled back", n.query("SELECT * FROM tx"),
			`{"results":[{"columns":["id","name"],"types":["integer","text"],"values":[[1,"x"],[2,"y"]]}]}`)
		// Without: carry on past the error.
		wantOK(t, "without ?transaction", n.post("/db/execute", batch),
			`{"results":[{"last_insert_id":3,"rows_affected":1},{"error":"no such table: nope"},{"last_insert_id":4,"rows_affected":1}]}`)
		wantOK(t, "kept", n.query("SELECT * FROM tx"),
			`{"results":[{"columns":["id","name"],"types":["integer","text"],"values":[[1,"x"],[2,"y"],[3,"a"],[4,"b"]]}]}`)
		// A transaction on the unified endpoint behaves the same.
		wantOK(t, "request ?transaction", n.post("/db/request?transaction", `["INSERT INTO tx(name) VALUES(\"c\")", "SELECT * FROM nope", "INSERT INTO tx(name) VALUES(\"d\")"]`),
			`{"results":[{"last_insert_id":5,"rows_affected":1},{"error":"no such table: nope"}]}`)
		wantOK(t, "request rolled back", n.query("SELECT COUNT(*) FROM tx"),
			`{"results":[{"columns":["COUNT(*)"],"types":["integer"],"values":[[4]]}]}`)
	})

	t.Run("associative", func(t *testing.T) {
		n := n.on(t)
		wantOK(t, "setup", n.execute(`["CREATE TABLE assoc (id INTEGER NOT NULL PRIMARY KEY, name TEXT)", "INSERT INTO assoc(name) VALUES(\"fiona\")", "INSERT INTO assoc(name) VALUES(\"declan\")"]`),
			`{"results":[{"last_insert_id":5,"rows_affected":1},{"last_insert_id":1,"rows_affected":1},{"last_insert_id":2,"rows_affected":1}]}`)
		// The exact string from e2e single_node.py (API.md 1.4).
		wantOK(t, "query", n.query("SELECT * FROM assoc", "associative"),
			`{"results":[{"types":{"id":"integer","name":"text"},"rows":[{"id":1,"name":"fiona"},{"id":2,"name":"declan"}]}]}`)
		// rows is not omitempty.
		wantOK(t, "empty", n.post("/db/query?associative", `["SELECT * FROM assoc WHERE id > 100"]`),
			`{"results":[{"types":{"id":"integer","name":"text"},"rows":[]}]}`)
		// A write result on execute gains "rows":null.
		wantOK(t, "execute", n.post("/db/execute?associative", `["INSERT INTO assoc(id, name) VALUES(99, \"x\")"]`),
			`{"results":[{"last_insert_id":99,"rows_affected":1,"rows":null}]}`)
		// The unified example of API.md 1.4.
		wantOK(t, "request", n.post("/db/request?associative", `["INSERT INTO assoc(id, name) VALUES(5, \"y\")", "SELECT * FROM assoc WHERE id > 100", "SELECT * FROM bar"]`),
			`{"results":[{"last_insert_id":5,"rows_affected":1,"rows":null},{"types":{"id":"integer","name":"text"},"rows":[]},{"error":"no such table: bar"}]}`)
	})

	t.Run("timings", func(t *testing.T) {
		n := n.on(t)
		for _, c := range []struct{ path, body string }{
			{"/db/execute?timings", `["INSERT INTO foo(name) VALUES(\"t\")", "INSERT INTO nope VALUES(1)"]`},
			{"/db/query?timings", `["SELECT * FROM foo WHERE id = 1", "SELECT * FROM nope"]`},
			{"/db/request?timings", `["INSERT INTO foo(name) VALUES(\"t\")", "SELECT * FROM foo WHERE id = 1"]`},
		} {
			r := n.post(c.path, c.body)
			var resp struct {
				Results []map[string]any `json:"results"`
				Time    *float64         `json:"time"`
			}
			if r.status != http.StatusOK || json.Unmarshal(r.body, &resp) != nil {
				t.Fatalf("%s: %s", c.path, r)
			}
			if resp.Time == nil || *resp.Time <= 0 {
				t.Errorf("%s: no positive top-level time: %s", c.path, r.body)
			}
			for i, res := range resp.Results {
				if _, failed := res["error"]; failed {
					continue
				}
				if tm, ok := res["time"].(float64); !ok || tm <= 0 {
					t.Errorf("%s: result %d has no positive time: %s", c.path, i, r.body)
				}
			}
			// And without the flag, no time at all (API.md 1.4).
			plain := n.post(strings.TrimSuffix(c.path, "?timings"), c.body)
			if bytes.Contains(plain.body, []byte(`"time"`)) {
				t.Errorf("%s without timings has a time: %s", c.path, plain.body)
			}
		}
	})

	t.Run("raft_index", func(t *testing.T) {
		n := n.on(t)
		// Key order matters (API.md 1.4): results, error, time, ...,
		// raft_index.
		shape := regexp.MustCompile(`^\{"results":\[.*\],"time":[0-9.e-]+,"raft_index":([0-9]+)\}$`)
		var last string
		for i := range 3 {
			r := n.post("/db/execute?raft_index&timings", `["INSERT INTO foo(name) VALUES(\"r\")"]`)
			m := shape.FindSubmatch(r.body)
			if r.status != http.StatusOK || m == nil {
				t.Fatalf("execute %d: %s, want results, time, raft_index in that order", i, r)
			}
			idx := string(m[1])
			if idx == "0" || (last != "" && !numLess(last, idx)) {
				t.Errorf("execute %d: raft_index %s after %s, want positive and increasing", i, idx, last)
			}
			last = idx
		}
		// A strong read goes through the log and has an index too.
		r := n.get("/db/query?q=SELECT+1&level=strong&raft_index")
		if m := regexp.MustCompile(`^\{"results":\[.*\],"raft_index":([0-9]+)\}$`).FindSubmatch(r.body); m == nil || !numLess(last, string(m[1])) {
			t.Errorf("strong read: %s, want a raft_index after %s", r, last)
		}
		// Without the flag, none.
		r = n.execute(`["INSERT INTO foo(name) VALUES(\"r\")"]`)
		if bytes.Contains(r.body, []byte("raft_index")) {
			t.Errorf("execute without raft_index: %s", r)
		}
	})

	t.Run("pretty", func(t *testing.T) {
		n := n.on(t)
		for _, c := range []struct{ method, path, body string }{
			{"GET", "/db/query?q=SELECT+*+FROM+assoc+ORDER+BY+id&pretty", ""},
			{"GET", "/db/query?q=SELECT+*+FROM+assoc+ORDER+BY+id&associative&pretty", ""},
			// Presence-only flag: pretty=false is pretty too (API.md 1.2).
			{"GET", "/db/query?q=SELECT+*+FROM+assoc+ORDER+BY+id&pretty=false", ""},
			{"POST", "/db/execute?pretty", `["INSERT INTO nope VALUES(1)"]`},
			{"GET", "/status?pretty&key=store.leader", ""},
		} {
			var pretty, compact response
			if c.method == "GET" {
				pretty = n.get(c.path)
				compact = n.get(regexp.MustCompile(`&pretty(=false)?|pretty&`).ReplaceAllString(c.path, ""))
			} else {
				pretty = n.post(c.path, c.body)
				compact = n.post(strings.TrimSuffix(c.path, "?pretty"), c.body)
			}
			// The pretty body is the compact one indented by 4 spaces.
			var want bytes.Buffer
			if err := json.Indent(&want, compact.body, "", "    "); err != nil {
				t.Fatalf("%s: compact body %q: %v", c.path, compact.body, err)
			}
			if pretty.status != http.StatusOK || string(pretty.body) != want.String() {
				t.Errorf("%s:\n got: %d %s\nwant: %s", c.path, pretty.status, pretty.body, want.String())
			}
			if !bytes.Contains(pretty.body, []byte("\n    \"")) {
				t.Errorf("%s: not indented by 4 spaces: %s", c.path, pretty.body)
			}
		}
	})

	// Schema migrations rename tables and columns (API.md 1.3: any SQL
	// SQLite runs); the renames must carry the rows, and a view with them.
	t.Run("alter table", func(t *testing.T) {
		n := n.on(t)
		wantOK(t, "migrate", n.execute(`["CREATE TABLE mig (id INTEGER PRIMARY KEY, nm TEXT)", "CREATE VIEW mig_v AS SELECT nm FROM mig", "INSERT INTO mig(nm) VALUES('x')", "ALTER TABLE mig RENAME COLUMN nm TO name", "ALTER TABLE mig RENAME TO migrated", "ALTER TABLE migrated ADD COLUMN age INTEGER DEFAULT 7", "ALTER TABLE migrated DROP COLUMN age"]`),
			`{"results":[{"last_insert_id":17,"rows_affected":1},{"last_insert_id":17,"rows_affected":1},{"last_insert_id":1,"rows_affected":1},{"last_insert_id":1,"rows_affected":1},{"last_insert_id":1,"rows_affected":1},{"last_insert_id":1,"rows_affected":1},{"last_insert_id":1,"rows_affected":1}]}`)
		wantOK(t, "renamed", n.query("SELECT * FROM migrated"),
			`{"results":[{"columns":["id","name"],"types":["integer","text"],"values":[[1,"x"]]}]}`)
		wantOK(t, "view follows", n.query("SELECT * FROM mig_v"),
			`{"results":[{"columns":["name"],"types":["text"],"values":[["x"]]}]}`)
	})
}

// numLess compares two decimal strings of digits as numbers.
func numLess(a, b string) bool {
	if len(a) != len(b) {
		return len(a) < len(b)
	}
	return a < b
}
