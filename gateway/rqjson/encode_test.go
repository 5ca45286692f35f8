package rqjson

import (
	"encoding/json"
	"math"
	"testing"

	"github.com/skiffdb/skiff/sm/cmdpb"
)

// Helpers to build results compactly.
func vI(v int64) *cmdpb.Value   { return &cmdpb.Value{V: &cmdpb.Value_I{I: v}} }
func vD(v float64) *cmdpb.Value { return &cmdpb.Value{V: &cmdpb.Value_D{D: v}} }
func vS(v string) *cmdpb.Value  { return &cmdpb.Value{V: &cmdpb.Value_S{S: v}} }
func vY(v []byte) *cmdpb.Value  { return &cmdpb.Value{V: &cmdpb.Value_Y{Y: v}} }
func vB(v bool) *cmdpb.Value    { return &cmdpb.Value{V: &cmdpb.Value_B{B: v}} }
func vT(v string) *cmdpb.Value  { return &cmdpb.Value{V: &cmdpb.Value_T{T: v}} }
func vNull() *cmdpb.Value       { return &cmdpb.Value{} }
func row(vs ...*cmdpb.Value) *cmdpb.Row {
	return &cmdpb.Row{Values: vs}
}
func exec(lid, ra int64) *cmdpb.StatementResult {
	return &cmdpb.StatementResult{LastInsertId: lid, RowsAffected: ra}
}
func fail(msg string) *cmdpb.StatementResult { return &cmdpb.StatementResult{Error: msg} }
func query(cols, types []string, rows ...*cmdpb.Row) *cmdpb.StatementResult {
	return &cmdpb.StatementResult{IsQuery: true, Columns: cols, Types: types, Rows: rows}
}
func res(rs ...*cmdpb.StatementResult) []*cmdpb.StatementResult { return rs }

var (
	idName      = []string{"id", "name"}
	integerText = []string{"integer", "text"}
)

func TestAppendResponse(t *testing.T) {
	assoc := Options{Associative: true}
	assocW := Options{Associative: true, WriteRowsNull: true}
	tests := []struct {
		name    string
		results []*cmdpb.StatementResult
		env     Envelope
		opts    Options
		want    string
	}{
		// API.md 1.4 top-level object.
		{name: "API.md 1.4 results always present, [] when empty", want: `{"results":[]}`},
		{name: "API.md 1.4 results [] for empty non-nil slice", results: res(), want: `{"results":[]}`},
		{name: "API.md 1.4 all top-level keys in order", results: res(exec(1, 1)),
			env:  Envelope{Error: "e", Time: 1.23, SequenceNumber: 7, RaftIndex: 9},
			opts: Options{Timings: true},
			want: `{"results":[{"last_insert_id":1,"rows_affected":1}],"error":"e","time":1.23,"sequence_number":7,"raft_index":9}`},
		{name: "API.md 1.4 time only with timings", env: Envelope{Time: 1.23},
			want: `{"results":[]}`},

		// API.md 1.4 Test_SingleNode sequence.
		{name: "API.md 1.4 CREATE TABLE -> {}", results: res(exec(0, 0)),
			want: `{"results":[{}]}`},
		{name: "API.md 1.4 INSERT -> last_insert_id, rows_affected", results: res(exec(1, 1)),
			want: `{"results":[{"last_insert_id":1,"rows_affected":1}]}`},
		{name: "API.md 1.4 INSERT into missing table -> error", results: res(fail("no such table: bar")),
			want: `{"results":[{"error":"no such table: bar"}]}`},
		{name: "API.md 1.4 syntax error escapes quotes", results: res(fail(`near "blah": syntax error`)),
			want: `{"results":[{"error":"near \"blah\": syntax error"}]}`},
		{name: "API.md 1.4 SELECT -> columns, types, values",
			results: res(query(idName, integerText, row(vI(1), vS("fiona")))),
			want:    `{"results":[{"columns":["id","name"],"types":["integer","text"],"values":[[1,"fiona"]]}]}`},
		{name: "API.md 1.4 DROP TABLE echoes previous DML counts", results: res(exec(1, 1)),
			want: `{"results":[{"last_insert_id":1,"rows_affected":1}]}`},

		// API.md 1.4 query results.
		{name: "API.md 1.4 empty query result omits values",
			results: res(query(idName, integerText)),
			want:    `{"results":[{"columns":["id","name"],"types":["integer","text"]}]}`},
		{name: "API.md 1.4 failed query has only error",
			results: res(&cmdpb.StatementResult{IsQuery: true, Error: "no such table: bar", Columns: idName, Types: integerText}),
			want:    `{"results":[{"error":"no such table: bar"}]}`},
		{name: `API.md 1.4 populateEmptyTypes: COUNT(*) -> "integer"`,
			results: res(query([]string{"COUNT(*)"}, []string{""}, row(vI(2)))),
			want:    `{"results":[{"columns":["COUNT(*)"],"types":["integer"],"values":[[2]]}]}`},
		{name: "API.md 1.4 populateEmptyTypes: each kind from the first row only",
			results: res(query([]string{"a", "b", "c", "d", "e"}, []string{"", "", "", "", "text"},
				row(vD(1.5), vS("x"), vB(true), vY([]byte("y")), vI(1)),
				row(vI(1), vI(1), vI(1), vI(1), vI(1)))),
			want: `{"results":[{"columns":["a","b","c","d","e"],"types":["real","text","boolean","text","text"],"values":[[1.5,"x",true,"y",1],[1,1,1,1,1]]}]}`},
		{name: "API.md 1.4 populateEmptyTypes: a NULL stops filling (rqlite quirk)",
			results: res(query([]string{"a", "b", "c", "d"}, []string{"", "integer", "", ""},
				row(vI(1), vI(2), vNull(), vI(4)))),
			want: `{"results":[{"columns":["a","b","c","d"],"types":["integer","integer","",""],"values":[[1,2,null,4]]}]}`},
		{name: "API.md 1.4 populateEmptyTypes: no rows leaves types empty",
			results: res(query([]string{"COUNT(*)"}, []string{""})),
			want:    `{"results":[{"columns":["COUNT(*)"],"types":[""]}]}`},

		// API.md 1.4 associative.
		{name: "API.md 1.4 associative (exact string from e2e single_node.py)",
			results: res(query(idName, integerText, row(vI(1), vS("fiona")), row(vI(2), vS("declan")))),
			opts:    assoc,
			want:    `{"results":[{"types":{"id":"integer","name":"text"},"rows":[{"id":1,"name":"fiona"},{"id":2,"name":"declan"}]}]}`},
		{name: "API.md 1.4 associative rows [] when empty",
			results: res(query(idName, integerText)), opts: assoc,
			want: `{"results":[{"types":{"id":"integer","name":"text"},"rows":[]}]}`},
		{name: "API.md 1.4 associative write gains rows:null on execute/request",
			results: res(exec(99, 1)), opts: assocW,
			want: `{"results":[{"last_insert_id":99,"rows_affected":1,"rows":null}]}`},
		{name: "API.md 1.4 associative write without WriteRowsNull (query endpoint)",
			results: res(exec(99, 1)), opts: assoc,
			want: `{"results":[{"last_insert_id":99,"rows_affected":1}]}`},
		{name: "API.md 1.4 unified /db/request associative example",
			results: res(exec(5, 1), query(idName, integerText), fail("no such table: bar")), opts: assocW,
			want: `{"results":[{"last_insert_id":5,"rows_affected":1,"rows":null},{"types":{"id":"integer","name":"text"},"rows":[]},{"error":"no such table: bar"}]}`},
		{name: "API.md 1.4 associative keys as encoding/json maps: sorted, last duplicate wins",
			results: res(query([]string{"name", "id", "name"}, []string{"text", "integer", "blob"},
				row(vS("fiona"), vI(1), vY([]byte{1})))), opts: assoc,
			want: `{"results":[{"types":{"id":"integer","name":"blob"},"rows":[{"id":1,"name":"AQ=="}]}]}`},
		{name: "API.md 1.4 associative with timings, short row",
			results: res(&cmdpb.StatementResult{IsQuery: true, Columns: idName, Types: integerText, Rows: []*cmdpb.Row{row(vI(1))}, Time: 0.5}),
			opts:    Options{Associative: true, Timings: true},
			want:    `{"results":[{"types":{"id":"integer","name":"text"},"rows":[{"id":1,"name":null}],"time":0.5}]}`},

		// API.md 1.4 RETURNING, queued writes, request-level errors, timings, raft_index.
		{name: "API.md 1.4 RETURNING returns a query shape",
			results: res(query(idName, integerText, row(vI(2), vS("declan")))),
			want:    `{"results":[{"columns":["id","name"],"types":["integer","text"],"values":[[2,"declan"]]}]}`},
		{name: "API.md 1.4 queued write", env: Envelope{SequenceNumber: 1653314298877648934},
			want: `{"results":[],"sequence_number":1653314298877648934}`},
		{name: "API.md 1.4 queued write with wait&timings",
			env: Envelope{Time: 0.04246644, SequenceNumber: 1795459547409450912}, opts: Options{Timings: true},
			want: `{"results":[],"time":0.04246644,"sequence_number":1795459547409450912}`},
		{name: "API.md 1.4 request-level error: disallowed pragma", env: Envelope{Error: "disallowed pragma"},
			want: `{"results":[],"error":"disallowed pragma"}`},
		{name: "API.md 1.4 request-level error: stale read", env: Envelope{Error: "stale read"},
			want: `{"results":[],"error":"stale read"}`},
		{name: "API.md 1.4 timings example",
			results: res(&cmdpb.StatementResult{LastInsertId: 1, RowsAffected: 1, Time: 0.00886}),
			env:     Envelope{Time: 0.0152}, opts: Options{Timings: true},
			want: `{"results":[{"last_insert_id":1,"rows_affected":1,"time":0.00886}],"time":0.0152}`},
		{name: "API.md 1.4 per-result time dropped without timings",
			results: res(&cmdpb.StatementResult{LastInsertId: 1, RowsAffected: 1, Time: 0.00886}),
			want:    `{"results":[{"last_insert_id":1,"rows_affected":1}]}`},
		{name: "API.md 1.4 timings on query and error results",
			results: res(&cmdpb.StatementResult{IsQuery: true, Columns: []string{"a"}, Types: []string{"integer"}, Time: 2e-7},
				&cmdpb.StatementResult{Error: "x", Time: 1}),
			opts: Options{Timings: true},
			want: `{"results":[{"columns":["a"],"types":["integer"],"time":2e-7},{"error":"x","time":1}]}`},
		{name: "API.md 1.4 raft_index", results: res(exec(3, 1)), env: Envelope{RaftIndex: 6},
			want: `{"results":[{"last_insert_id":3,"rows_affected":1}],"raft_index":6}`},

		// API.md 1.6 per-statement errors.
		{name: "API.md 1.6 transaction stops at first error",
			results: res(exec(3, 1), fail("no such table: nope")),
			want:    `{"results":[{"last_insert_id":3,"rows_affected":1},{"error":"no such table: nope"}]}`},
		{name: "API.md 1.6 without transaction processing continues",
			results: res(exec(3, 1), fail("no such table: nope"), exec(4, 1)),
			want:    `{"results":[{"last_insert_id":3,"rows_affected":1},{"error":"no such table: nope"},{"last_insert_id":4,"rows_affected":1}]}`},
		{name: "API.md 1.6 write via query endpoint",
			results: res(fail("attempt to change database via query operation")),
			want:    `{"results":[{"error":"attempt to change database via query operation"}]}`},

		// API.md 1.5 value encoding.
		{name: "API.md 1.5 INTEGER, REAL and NULL",
			results: res(query([]string{"i", "r", "n"}, []string{"integer", "real", "integer"},
				row(vI(-9223372036854775808), vD(1.5), vNull()), row(vI(0), vD(100), vNull()))),
			want: `{"results":[{"columns":["i","r","n"],"types":["integer","real","integer"],"values":[[-9223372036854775808,1.5,null],[0,100,null]]}]}`},
		{name: "API.md 1.5 REAL formatted as encoding/json does",
			results: res(query([]string{"r"}, []string{"real"},
				row(vD(1e21)), row(vD(1e20)), row(vD(1e-6)), row(vD(1e-7)), row(vD(-1.5e-10)), row(vD(123456789.125)),
				row(vD(math.NaN())), row(vD(math.Inf(-1))), row(vD(math.Copysign(0, -1))), row(vD(5e-324)))),
			want: `{"results":[{"columns":["r"],"types":["real"],"values":[[1e+21],[100000000000000000000],[0.000001],[1e-7],[-1.5e-10],[123456789.125],[null],[null],[-0],[5e-324]]}]}`},
		{name: "API.md 1.5 BLOB as base64",
			results: res(query([]string{"b"}, []string{"blob"}, row(vY([]byte{0xde, 0xad, 0xbe, 0xef})), row(vY(nil)))),
			want:    `{"results":[{"columns":["b"],"types":["blob"],"values":[["3q2+7w=="],[""]]}]}`},
		{name: "API.md 1.5 BLOB as array with blob_array",
			results: res(query([]string{"b"}, []string{"blob"}, row(vY([]byte{0xde, 0xad, 0xbe, 0xef})), row(vY(nil)))),
			opts:    Options{BlobArray: true},
			want:    `{"results":[{"columns":["b"],"types":["blob"],"values":[[[222,173,190,239]],[[]]]}]}`},
		{name: "API.md 1.5 BLOB in text-like declared columns is a string",
			results: res(query(
				[]string{"t", "j", "e", "v", "vc", "nc", "natc", "nv", "cl", "T", "c", "x"},
				[]string{"text", "json", "", "varchar(10)", "varying character(5)", "nchar(2)", "native character", "nvarchar", "clob", "TEXT", "char(4)", "texty"},
				row(vY([]byte("a")), vY([]byte("b")), vY([]byte("c")), vY([]byte("d")), vY([]byte("e")), vY([]byte("f")),
					vY([]byte("g")), vY([]byte("h")), vY([]byte("<&>")), vY([]byte("k")), vY([]byte("l")), vY([]byte("m"))))),
			opts: Options{BlobArray: true},
			want: `{"results":[{"columns":["t","j","e","v","vc","nc","natc","nv","cl","T","c","x"],` +
				`"types":["text","json","text","varchar(10)","varying character(5)","nchar(2)","native character","nvarchar","clob","TEXT","char(4)","texty"],` +
				`"values":[["a","b","c","d","e","f","g","h","\u003c\u0026\u003e","k",[108],[109]]]}]}`},
		{name: "API.md 1.5 invalid UTF-8 text-like bytes become U+FFFD",
			results: res(query([]string{"t"}, []string{"text"}, row(vY([]byte{0xff, 0xfe, 'a'})))),
			want:    `{"results":[{"columns":["t"],"types":["text"],"values":[["\ufffd\ufffda"]]}]}`},
		{name: "API.md 1.5 DATETIME as RFC3339 string",
			results: res(query([]string{"ts"}, []string{"datetime"}, row(vT("2023-11-14T22:13:20Z")))),
			want:    `{"results":[{"columns":["ts"],"types":["datetime"],"values":[["2023-11-14T22:13:20Z"]]}]}`},
		{name: "API.md 1.5 BOOLEAN as true/false",
			results: res(query([]string{"flag"}, []string{"boolean"}, row(vB(true)), row(vB(false)))),
			want:    `{"results":[{"columns":["flag"],"types":["boolean"],"values":[[true],[false]]}]}`},
		{name: "API.md 1.5 HTML escaping",
			results: res(query([]string{"a<b"}, []string{"text"}, row(vS("x<y&z>")))),
			want:    `{"results":[{"columns":["a\u003cb"],"types":["text"],"values":[["x\u003cy\u0026z\u003e"]]}]}`},
		{name: "API.md 1.5 non-ASCII raw, U+2028/2029 and controls escaped",
			results: res(query([]string{"s"}, []string{"text"}, row(vS("こんにちは\u2028\u2029\x00\x1f\x7f\b\f\n\r\t\"\\/")))),
			want:    `{"results":[{"columns":["s"],"types":["text"],"values":[["こんにちは\u2028\u2029\u0000\u001f` + "\x7f" + `\b\f\n\r\t\"\\/"]]}]}`},
		{name: "API.md 1.5 associative values",
			results: res(query([]string{"b", "a"}, []string{"blob", ""}, row(vY([]byte{1, 2}), vNull()))),
			opts:    Options{Associative: true, BlobArray: true},
			want:    `{"results":[{"types":{"a":"","b":"blob"},"rows":[{"a":null,"b":[1,2]}]}]}`},

		// Robustness: nil entries and shapes rqlite never produces.
		{name: "nil result and nil row do not panic",
			results: res(nil, query([]string{"a"}, []string{"integer"}, nil)),
			want:    `{"results":[{},{"columns":["a"],"types":["integer"],"values":[[]]}]}`},
		{name: "query without columns", results: res(query(nil, nil)), want: `{"results":[{}]}`},
		{name: "associative query without columns", results: res(query(nil, nil)), opts: assoc,
			want: `{"results":[{"rows":[]}]}`},
		{name: "fewer types than columns", results: res(query(idName, []string{"integer"}, row(vI(1), vS("x")))),
			want: `{"results":[{"columns":["id","name"],"types":["integer","text"],"values":[[1,"x"]]}]}`},
		{name: "negative numbers", results: res(exec(-1, -2)),
			want: `{"results":[{"last_insert_id":-1,"rows_affected":-2}]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := string(AppendResponse(nil, tt.results, tt.env, tt.opts))
			if got != tt.want {
				t.Errorf("\n got %s\nwant %s", got, tt.want)
			}
			if !json.Valid([]byte(got)) {
				t.Errorf("invalid JSON: %s", got)
			}
			// Appending keeps what dst held.
			prefix := []byte("prefix")
			if got := string(AppendResponse(prefix, tt.results, tt.env, tt.opts)); got != "prefix"+tt.want {
				t.Errorf("append to non-empty dst: got %s", got)
			}
		})
	}
}

func TestAppendResponsePretty(t *testing.T) {
	// API.md 1.2 pretty: indented JSON, 4 spaces, as json.MarshalIndent.
	got := string(AppendResponse([]byte("x"), res(query(idName, integerText, row(vI(1), vS("fiona")))), Envelope{RaftIndex: 2}, Options{Pretty: true}))
	want := `x{
    "results": [
        {
            "columns": [
                "id",
                "name"
            ],
            "types": [
                "integer",
                "text"
            ],
            "values": [
                [
                    1,
                    "fiona"
                ]
            ]
        }
    ],
    "raft_index": 2
}`
	if got != want {
		t.Errorf("\n got %s\nwant %s", got, want)
	}
	if got, want := string(AppendResponse(nil, nil, Envelope{}, Options{Pretty: true})), "{\n    \"results\": []\n}"; got != want {
		t.Errorf("empty pretty: got %q, want %q", got, want)
	}
}

func TestAppendError(t *testing.T) {
	tests := []struct {
		msg    string
		pretty bool
		want   string
	}{
		// API.md 1.4 request-level error.
		{"disallowed pragma", false, `{"results":[],"error":"disallowed pragma"}`},
		{"stale read", false, `{"results":[],"error":"stale read"}`},
		{"a<b", false, `{"results":[],"error":"a\u003cb"}`},
		{"", false, `{"results":[]}`},
		{"stale read", true, "{\n    \"results\": [],\n    \"error\": \"stale read\"\n}"},
	}
	for _, tt := range tests {
		if got := string(AppendError(nil, tt.msg, tt.pretty)); got != tt.want {
			t.Errorf("AppendError(%q, %v) = %s, want %s", tt.msg, tt.pretty, got, tt.want)
		}
	}
}

func BenchmarkAppendResponse(b *testing.B) {
	// A 100-row, 5-column query result, the common shape of a read.
	cols := []string{"id", "name", "score", "data", "note"}
	types := []string{"integer", "text", "real", "blob", ""}
	r := &cmdpb.StatementResult{IsQuery: true, Columns: cols, Types: types}
	for i := range 100 {
		r.Rows = append(r.Rows, row(
			vI(int64(i)),
			vS("name <"+string(rune('a'+i%26))+"> & こんにちは"),
			vD(float64(i)*1.25),
			vY([]byte{0xde, 0xad, 0xbe, 0xef, byte(i)}),
			vNull(),
		))
	}
	results := []*cmdpb.StatementResult{r}
	for _, bc := range []struct {
		name string
		opts Options
	}{
		{"values", Options{}},
		{"associative", Options{Associative: true}},
		{"pretty", Options{Pretty: true}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var buf []byte
			b.ReportAllocs()
			for b.Loop() {
				buf = AppendResponse(buf[:0], results, Envelope{}, bc.opts)
			}
			b.SetBytes(int64(len(buf)))
		})
	}
}
