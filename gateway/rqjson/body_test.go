package rqjson

import (
	"errors"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/skiffdb/skiff/sm/cmdpb"
)

// Helpers to write expected statements compactly.
func st(sql string, ps ...*cmdpb.Parameter) *cmdpb.Statement {
	return &cmdpb.Statement{Sql: sql, Parameters: ps}
}
func pI(v int64) *cmdpb.Parameter   { return &cmdpb.Parameter{Value: &cmdpb.Parameter_I{I: v}} }
func pD(v float64) *cmdpb.Parameter { return &cmdpb.Parameter{Value: &cmdpb.Parameter_D{D: v}} }
func pB(v bool) *cmdpb.Parameter    { return &cmdpb.Parameter{Value: &cmdpb.Parameter_B{B: v}} }
func pS(v string) *cmdpb.Parameter  { return &cmdpb.Parameter{Value: &cmdpb.Parameter_S{S: v}} }
func pY(v ...byte) *cmdpb.Parameter {
	if v == nil {
		v = []byte{}
	}
	return &cmdpb.Parameter{Value: &cmdpb.Parameter_Y{Y: v}}
}
func pNull() *cmdpb.Parameter { return &cmdpb.Parameter{} }
func named(name string, p *cmdpb.Parameter) *cmdpb.Parameter {
	p.Name = name
	return p
}

func TestParseStatements(t *testing.T) {
	tests := []struct {
		name        string
		body        string
		contentType string
		want        []*cmdpb.Statement
	}{
		{
			name:        "API.md 1.3 form 1: plain SQL array",
			body:        `["CREATE TABLE foo (id INTEGER NOT NULL PRIMARY KEY, name TEXT)", "INSERT INTO foo(name) VALUES(\"fiona\")"]`,
			contentType: "application/json",
			want: []*cmdpb.Statement{
				st("CREATE TABLE foo (id INTEGER NOT NULL PRIMARY KEY, name TEXT)"),
				st(`INSERT INTO foo(name) VALUES("fiona")`),
			},
		},
		{
			name: "API.md 1.3 form 1: content type is not checked",
			body: `["SELECT 1"]`,
			want: []*cmdpb.Statement{st("SELECT 1")},
		},
		{
			name: "API.md 1.3 form 2: parameterized, positional",
			body: `[["INSERT INTO foo(name, age) VALUES(?, ?)", "fiona", 20]]`,
			want: []*cmdpb.Statement{st("INSERT INTO foo(name, age) VALUES(?, ?)", pS("fiona"), pI(20))},
		},
		{
			name: "API.md 1.3 form 3: parameterized, named",
			body: `[["INSERT INTO foo(name, age) VALUES(:name, :age)", {"name": "fiona", "age": 20}]]`,
			want: []*cmdpb.Statement{st("INSERT INTO foo(name, age) VALUES(:name, :age)",
				named("age", pI(20)), named("name", pS("fiona")))},
		},
		{
			name: "API.md 1.3 mixed: parameterized array and one-element array",
			body: `[["INSERT INTO bar(name, age) VALUES(?,?)", "fiona", 20], ["INSERT INTO bar(name, age) VALUES(\"sinead\", 25)"]]`,
			want: []*cmdpb.Statement{
				st("INSERT INTO bar(name, age) VALUES(?,?)", pS("fiona"), pI(20)),
				st(`INSERT INTO bar(name, age) VALUES("sinead", 25)`),
			},
		},
		{
			name: "API.md 1.3 mixed: bare string next to arrays gives three statements",
			body: `[["INSERT INTO foo(name) VALUES(?)", "fiona"], ["INSERT INTO foo(name) VALUES(:name)", {"name": "declan"}], "INSERT INTO nonsense VALUES(1)"]`,
			want: []*cmdpb.Statement{
				st("INSERT INTO foo(name) VALUES(?)", pS("fiona")),
				st("INSERT INTO foo(name) VALUES(:name)", named("name", pS("declan"))),
				st("INSERT INTO nonsense VALUES(1)"),
			},
		},
		{
			name:        "API.md 1.3 form 4: text/plain body is one statement",
			body:        "CREATE TABLE foo (id INTEGER); INSERT INTO foo VALUES(1)",
			contentType: "text/plain",
			want:        []*cmdpb.Statement{st("CREATE TABLE foo (id INTEGER); INSERT INTO foo VALUES(1)")},
		},
		{
			name:        "API.md 1.3 form 4: text/plain with charset, body not parsed as JSON",
			body:        `["not", "json array"]`,
			contentType: "Text/Plain; charset=utf-8",
			want:        []*cmdpb.Statement{st(`["not", "json array"]`)},
		},
		{
			name:        "API.md 1.3 form 4: text/plain with malformed parameters",
			body:        "SELECT 1",
			contentType: "text/plain; =",
			want:        []*cmdpb.Statement{st("SELECT 1")},
		},
		{
			name: "API.md 1.3 empty SQL strings are skipped",
			body: `["", "SELECT 1", [""], ["", 1]]`,
			want: []*cmdpb.Statement{st("SELECT 1")},
		},
		{
			name: "API.md 1.3 typing: integer, float, exponent, bool, null",
			body: `[["q", 1, -0, 1.5, 1.0, 1e3, -2E-2, true, false, null]]`,
			want: []*cmdpb.Statement{st("q", pI(1), pI(0), pD(1.5), pD(1), pD(1000), pD(-0.02), pB(true), pB(false), pNull())},
		},
		{
			name: "API.md 1.3 typing: int64 bounds stay integers, beyond become float64",
			body: `[["q", 9223372036854775807, -9223372036854775808, 9223372036854775808, 100000000000000000000000]]`,
			want: []*cmdpb.Statement{st("q", pI(9223372036854775807), pI(-9223372036854775808), pD(9223372036854775808), pD(1e23))},
		},
		{
			name: "API.md 1.3 typing: array of 0-255 integers is a BLOB",
			body: `[["q", [222, 173, 190, 239], [], [0, 255]]]`,
			want: []*cmdpb.Statement{st("q", pY(222, 173, 190, 239), pY(), pY(0, 255))},
		},
		{
			name: "API.md 1.3 typing: x'..' and X'..' hex strings are BLOBs",
			body: `[["q", "x'DEADbeef'", "X'00ff'", "x''"]]`,
			want: []*cmdpb.Statement{st("q", pY(0xde, 0xad, 0xbe, 0xef), pY(0, 0xff), pY())},
		},
		{
			name: "API.md 1.3 typing: other strings are TEXT (odd length, bad hex, no quotes)",
			body: `[["q", "x'abc'", "x'zz'", "x'ab", "xab'", "y'ab'", "'ab'", "x'", ""]]`,
			want: []*cmdpb.Statement{st("q", pS("x'abc'"), pS("x'zz'"), pS("x'ab"), pS("xab'"), pS("y'ab'"), pS("'ab'"), pS("x'"), pS(""))},
		},
		{
			name: "API.md 1.3 named: prefixes stripped, names sorted, all value types",
			body: `[["q", {"$z": null, ":b": [1, 2], "@a": 1.5, "c": "x'01'", "d": true, "e": "s"}]]`,
			want: []*cmdpb.Statement{st("q",
				named("a", pD(1.5)), named("b", pY(1, 2)), named("c", pY(1)),
				named("d", pB(true)), named("e", pS("s")), named("z", pNull()))},
		},
		{
			// SQLite allows '$' inside names, so only one prefix is removed:
			// the driver binds "$" as "$$" (fuzz seed 6c0e69c27e6818a8).
			name: "API.md 1.3 named: only one prefix is stripped",
			body: `[["q", {"$$": 0, "::a": 1}]]`,
			want: []*cmdpb.Statement{st("q", named("$", pI(0)), named(":a", pI(1)))},
		},
		{
			name: "API.md 1.3 named: object after positional arguments spreads too",
			body: `[["q", 1, {"b": 2, "a": 3}]]`,
			want: []*cmdpb.Statement{st("q", pI(1), named("a", pI(3)), named("b", pI(2)))},
		},
		{
			name: "API.md 1.3 named: empty object adds nothing",
			body: `[["q", {}]]`,
			want: []*cmdpb.Statement{st("q")},
		},
		{
			name: "whitespace around the array is fine",
			body: " \n\t[\"SELECT 1\"]\r\n ",
			want: []*cmdpb.Statement{st("SELECT 1")},
		},
		{
			name: "unicode and escapes in SQL",
			body: `["SELECT 'こんにちは', '\u003c\n'"]`,
			want: []*cmdpb.Statement{st("SELECT 'こんにちは', '<\n'")},
		},
		{
			name: "API.md 1.4 RETURNING marks ReturnsRows",
			body: `["INSERT INTO foo(name) VALUES('declan') RETURNING *", ["UPDATE foo SET name=? returning id", "x"], "INSERT INTO foo(returning_x) VALUES(1)"]`,
			want: []*cmdpb.Statement{
				{Sql: "INSERT INTO foo(name) VALUES('declan') RETURNING *", ReturnsRows: true},
				{Sql: "UPDATE foo SET name=? returning id", Parameters: []*cmdpb.Parameter{pS("x")}, ReturnsRows: true},
				st("INSERT INTO foo(returning_x) VALUES(1)"),
			},
		},
		{
			name:        "text/plain RETURNING marks ReturnsRows",
			body:        "DELETE FROM foo RETURNING id",
			contentType: "text/plain",
			want:        []*cmdpb.Statement{{Sql: "DELETE FROM foo RETURNING id", ReturnsRows: true}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseStatements([]byte(tt.body), tt.contentType)
			if err != nil {
				t.Fatalf("ParseStatements(%q) error: %v", tt.body, err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %d statements %v, want %d %v", len(got), got, len(tt.want), tt.want)
			}
			for i := range got {
				if !proto.Equal(got[i], tt.want[i]) {
					t.Errorf("statement %d:\n got %v\nwant %v", i, got[i], tt.want[i])
				}
			}
		})
	}
}

func TestParseStatementsErrors(t *testing.T) {
	tests := []struct {
		name        string
		body        string
		contentType string
		want        error
		wantText    string // exact error text; defaults to want's text
	}{
		// API.md 1.3: "invalid JSON body" for non-JSON.
		{name: "API.md 1.3 invalid JSON: not JSON", body: `SELECT 1`, want: ErrInvalidJSON},
		{name: "API.md 1.3 invalid JSON: truncated array", body: `["SELECT 1"`, want: ErrInvalidJSON},
		{name: "API.md 1.3 invalid JSON: trailing comma", body: `["SELECT 1",]`, want: ErrInvalidJSON},
		{name: "API.md 1.3 invalid JSON: trailing data", body: `["SELECT 1"] ["SELECT 2"]`, want: ErrInvalidJSON},
		{name: "API.md 1.3 invalid JSON: wins over shape errors", body: `[1, `, want: ErrInvalidJSON},
		{name: "API.md 1.3 invalid JSON: lone bracket", body: `[`, want: ErrInvalidJSON},
		{name: "API.md 1.3 invalid JSON: bad escape", body: `["\x"]`, want: ErrInvalidJSON},
		{name: "API.md 1.3 invalid JSON: non-JSON space only", body: "\u00a0", want: ErrInvalidJSON},
		// API.md 1.3: "invalid request" for JSON that is not an array.
		{name: "API.md 1.3 invalid request: object", body: `{"sql": "SELECT 1"}`, want: ErrInvalidRequest},
		{name: "API.md 1.3 invalid request: string", body: `"SELECT 1"`, want: ErrInvalidRequest},
		{name: "API.md 1.3 invalid request: number", body: `1`, want: ErrInvalidRequest},
		{name: "API.md 1.3 invalid request: bool", body: `true`, want: ErrInvalidRequest},
		{name: "API.md 1.3 invalid request: number element", body: `[1]`, want: ErrInvalidRequest},
		{name: "API.md 1.3 invalid request: null element", body: `[null]`, want: ErrInvalidRequest},
		{name: "API.md 1.3 invalid request: object element", body: `[{"a": 1}]`, want: ErrInvalidRequest},
		{name: "API.md 1.3 invalid request: empty inner array", body: `[[]]`, want: ErrInvalidRequest},
		{name: "API.md 1.3 invalid request: non-string SQL", body: `[[1, "a"]]`, want: ErrInvalidRequest},
		{name: "API.md 1.3 invalid request: array as SQL", body: `[[["SELECT 1"]]]`, want: ErrInvalidRequest},
		{name: "API.md 1.3 invalid request: empty parameter name", body: `[["q", {"": 1}]]`, want: ErrInvalidRequest},
		{name: "API.md 1.3 invalid request: bare prefix as name", body: `[["q", {":": 1}]]`, want: ErrInvalidRequest},
		// API.md 1.3: "no statements" for [].
		{name: "API.md 1.3 no statements: []", body: `[]`, want: ErrNoStatements},
		{name: "API.md 1.3 no statements: empty body", body: ``, want: ErrNoStatements},
		{name: "API.md 1.3 no statements: whitespace body", body: " \n", want: ErrNoStatements},
		{name: "API.md 1.3 no statements: null", body: `null`, want: ErrNoStatements},
		{name: "API.md 1.3 no statements: only empty strings", body: `["", [""]]`, want: ErrNoStatements},
		{name: "API.md 1.3 no statements: empty text/plain", body: ``, contentType: "text/plain", want: ErrNoStatements},
		// API.md 1.3: anything else gives 400 "unsupported type ...".
		{name: "API.md 1.3 unsupported type: nested object in named", body: `[["q", {"a": {"b": 1}}]]`, want: ErrUnsupportedType,
			wantText: `unsupported type: nested object for parameter "a"`},
		{name: "API.md 1.3 unsupported type: array of strings", body: `[["q", ["a"]]]`, want: ErrUnsupportedType,
			wantText: `unsupported type: array element "a" is not a byte`},
		{name: "API.md 1.3 unsupported type: array with object", body: `[["q", [{}]]]`, want: ErrUnsupportedType,
			wantText: `unsupported type: array element { is not a byte`},
		{name: "API.md 1.3 unsupported type: nested array", body: `[["q", [[1]]]]`, want: ErrUnsupportedType,
			wantText: `unsupported type: array element [ is not a byte`},
		{name: "API.md 1.3 unsupported type: array with null", body: `[["q", [null]]]`, want: ErrUnsupportedType,
			wantText: `unsupported type: array element null is not a byte`},
		{name: "API.md 1.3 unsupported type: byte 256", body: `[["q", [1, 256]]]`, want: ErrUnsupportedType,
			wantText: `unsupported type: array element 256 is not a byte`},
		{name: "API.md 1.3 unsupported type: byte -1", body: `[["q", [-1]]]`, want: ErrUnsupportedType},
		{name: "API.md 1.3 unsupported type: byte 1.5", body: `[["q", [1.5]]]`, want: ErrUnsupportedType},
		{name: "API.md 1.3 unsupported type: bad array in named", body: `[["q", {"a": [true]}]]`, want: ErrUnsupportedType},
		{name: "API.md 1.3 unsupported type: number beyond float64", body: `[["q", 1e400]]`, want: ErrUnsupportedType,
			wantText: `unsupported type: number 1e400 out of range`},
		{name: "API.md 1.3 unsupported type: in a skipped statement", body: `["SELECT 1", ["", [300]]]`, want: ErrUnsupportedType},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseStatements([]byte(tt.body), tt.contentType)
			if !errors.Is(err, tt.want) {
				t.Fatalf("ParseStatements(%q) = %v, %v; want error %v", tt.body, got, err, tt.want)
			}
			if got != nil {
				t.Errorf("statements %v returned with error", got)
			}
			text := tt.wantText
			if text == "" {
				text = tt.want.Error()
			}
			if tt.want == ErrUnsupportedType && tt.wantText == "" {
				if !strings.HasPrefix(err.Error(), "unsupported type") {
					t.Errorf("error text %q does not start with %q", err, "unsupported type")
				}
				return
			}
			if err.Error() != text {
				t.Errorf("error text %q, want %q", err, text)
			}
		})
	}
}

func TestSentinelTexts(t *testing.T) {
	// API.md 1.3: these are the exact 400 bodies rqlite writes.
	for err, want := range map[error]string{
		ErrInvalidJSON:     "invalid JSON body",
		ErrInvalidRequest:  "invalid request",
		ErrNoStatements:    "no statements",
		ErrUnsupportedType: "unsupported type",
	} {
		if err.Error() != want {
			t.Errorf("got %q, want %q", err, want)
		}
	}
}

func TestParseQueryString(t *testing.T) {
	// API.md 1.2: GET ?q= carries one statement; GET endpoints read, so it
	// is query-shaped.
	got := ParseQueryString("SELECT * FROM foo")
	want := []*cmdpb.Statement{{Sql: "SELECT * FROM foo", ReturnsRows: true}}
	if len(got) != 1 || !proto.Equal(got[0], want[0]) {
		t.Errorf("got %v, want %v", got, want)
	}
	if got := ParseQueryString(""); got != nil {
		t.Errorf("empty q: got %v, want nil", got)
	}
}

// BenchmarkParseStatements: the bodies of the bench workloads.
func BenchmarkParseStatements(b *testing.B) {
	for _, c := range []struct{ name, body string }{
		{"point-read", `[["SELECT id, v FROM bench WHERE id = ?", 4711]]`},
		{"insert", `[["INSERT INTO bench (v) VALUES (?)", "vvvvvvvvvvvvvvvv"]]`},
		{"named", `[["INSERT INTO t (a, b) VALUES (:a, :b)", {"a": 1, "b": "x\u00e9"}]]`},
	} {
		b.Run(c.name, func(b *testing.B) {
			body := []byte(c.body)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := ParseStatements(body, "application/json"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
