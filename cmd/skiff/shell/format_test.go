package shell

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func TestWriteTable(t *testing.T) {
	for _, tc := range []struct {
		name    string
		columns []string
		rows    [][]any
		want    string
	}{
		{"basic", []string{"id", "name"}, [][]any{{json.Number("1"), "fiona"}, {json.Number("20"), "bo"}}, `
+----+-------+
| id | name  |
+----+-------+
| 1  | fiona |
| 20 | bo    |
+----+-------+
`},
		{"no rows", []string{"a"}, nil, `
+---+
| a |
+---+
+---+
`},
		{"null, blob, float", []string{"n", "b", "f"}, [][]any{{nil, []any{json.Number("1"), json.Number("171")}, json.Number("1.5")}}, `
+------+---------+-----+
| n    | b       | f   |
+------+---------+-----+
| NULL | X'01AB' | 1.5 |
+------+---------+-----+
`},
		{"wide characters", []string{"名前", "x"}, [][]any{{"日本語", "é"}, {"ab", "e\u0301"}},
			"\n+--------+---+\n| 名前   | x |\n+--------+---+\n| 日本語 | é |\n| ab     | e\u0301 |\n+--------+---+\n"},
		{"control characters", []string{"s"}, [][]any{{"a\nb\tc"}}, `
+---------+
| s       |
+---------+
| a\nb\tc |
+---------+
`},
		{"short row", []string{"a", "b"}, [][]any{{"x"}}, `
+---+------+
| a | b    |
+---+------+
| x | NULL |
+---+------+
`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			WriteTable(&b, tc.columns, tc.rows)
			if want := strings.TrimPrefix(tc.want, "\n"); b.String() != want {
				t.Errorf("got:\n%s\nwant:\n%s", b.String(), want)
			}
		})
	}
}

func TestWriteResult(t *testing.T) {
	for _, tc := range []struct {
		name  string
		r     Result
		timer bool
		want  string
	}{
		{"one row", Result{RowsAffected: 1}, false, "1 row affected\n"},
		{"none", Result{}, false, "0 row affected\n"},
		{"many", Result{RowsAffected: 3}, false, "3 rows affected\n"},
		{"timed", Result{RowsAffected: 2, Time: 0.25}, true, "2 rows affected (0.250000 sec)\n"},
		{"error", Result{Error: "no such table: t"}, false, "Error: no such table: t\n"},
		{"rows timed", Result{Columns: []string{"x"}, Values: [][]any{{json.Number("1")}}, Time: 0.5}, true,
			"+---+\n| x |\n+---+\n| 1 |\n+---+\nRun Time: 0.500000 seconds\n"},
		{"returning", Result{Columns: []string{"id"}, Values: [][]any{{json.Number("7")}}, RowsAffected: 1}, false,
			"+----+\n| id |\n+----+\n| 7  |\n+----+\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			WriteResult(&b, &tc.r, tc.timer)
			if b.String() != tc.want {
				t.Errorf("got %q, want %q", b.String(), tc.want)
			}
		})
	}
}

func TestCell(t *testing.T) {
	for _, tc := range []struct {
		v    any
		want string
	}{
		{nil, "NULL"},
		{json.Number("-3"), "-3"},
		{"text", "text"},
		{true, "1"},
		{[]any{}, "X''"},
		{[]any{json.Number("300")}, "[300]"},
		{[]any{"x"}, `["x"]`},
		{map[string]any{"a": json.Number("1")}, `{"a":1}`},
	} {
		if got := Cell(tc.v); got != tc.want {
			t.Errorf("Cell(%#v) = %q, want %q", tc.v, got, tc.want)
		}
	}
}

func TestDisplayWidth(t *testing.T) {
	for s, want := range map[string]int{"": 0, "abc": 3, "日本": 4, "e\u0301": 1, "한국": 4, "🙂": 2, "a\u200db": 2, "ｆｕｌｌ": 8} {
		if got := displayWidth(s); got != want {
			t.Errorf("displayWidth(%q) = %d, want %d", s, got, want)
		}
	}
}

func TestWriteJSONTree(t *testing.T) {
	var m map[string]any
	if err := decode([]byte(`{"b":{"y":2,"x":"s","n":null},"a":[1,2],"c":true}`), &m); err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	WriteJSONTree(&b, m)
	want := "a: [1 2]\nb:\n  x: s\n  y: 2\nc: true\n"
	if b.String() != want {
		t.Errorf("got %q, want %q", b.String(), want)
	}
}
