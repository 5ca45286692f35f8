package shell

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"unicode"
)

// Result is one statement's result as /db/request returns it.
type Result struct {
	Columns      []string `json:"columns"`
	Types        []string `json:"types"`
	Values       [][]any  `json:"values"`
	RowsAffected int64    `json:"rows_affected"`
	LastInsertID int64    `json:"last_insert_id"`
	Time         float64  `json:"time"`
	Error        string   `json:"error"`
}

// isQuery: a result with columns is rows (also INSERT ... RETURNING);
// rqlite's CLI tells the two apart the same way.
func (r *Result) isQuery() bool { return r.Columns != nil || r.Types != nil || r.Values != nil }

// WriteResult prints one result the way rqlite's CLI does: rows as a
// table, otherwise "N row(s) affected"; with the timer on, the time.
func WriteResult(w io.Writer, r *Result, timer bool) {
	if r.Error != "" {
		fmt.Fprintf(w, "Error: %s\n", r.Error)
		return
	}
	if r.isQuery() {
		WriteTable(w, r.Columns, r.Values)
		if timer {
			fmt.Fprintf(w, "Run Time: %f seconds\n", r.Time)
		}
		return
	}
	// rqlite says "row" for 0 and 1, "rows" above.
	noun := "row"
	if r.RowsAffected > 1 {
		noun = "rows"
	}
	if timer {
		fmt.Fprintf(w, "%d %s affected (%f sec)\n", r.RowsAffected, noun, r.Time)
	} else {
		fmt.Fprintf(w, "%d %s affected\n", r.RowsAffected, noun)
	}
}

// WriteTable prints rows in sqlite3's `.mode table` layout: a border
// above and below, one under the header, cells left-aligned and padded to
// the column's display width (wide East Asian characters count two,
// combining marks none), NULL for SQL NULL, X'..' for a BLOB.
func WriteTable(w io.Writer, columns []string, rows [][]any) {
	if len(columns) == 0 {
		return
	}
	cells := make([][]string, len(rows))
	widths := make([]int, len(columns))
	for j, c := range columns {
		widths[j] = displayWidth(c)
	}
	for i, row := range rows {
		cells[i] = make([]string, len(columns))
		for j := range columns {
			var v any
			if j < len(row) {
				v = row[j]
			}
			s := Cell(v)
			cells[i][j] = s
			widths[j] = max(widths[j], displayWidth(s))
		}
	}
	var b strings.Builder
	border := func() {
		b.WriteByte('+')
		for _, wd := range widths {
			b.WriteString(strings.Repeat("-", wd+2))
			b.WriteByte('+')
		}
		b.WriteByte('\n')
	}
	line := func(vals []string) {
		b.WriteByte('|')
		for j, v := range vals {
			b.WriteByte(' ')
			b.WriteString(v)
			b.WriteString(strings.Repeat(" ", widths[j]-displayWidth(v)+1))
			b.WriteByte('|')
		}
		b.WriteByte('\n')
	}
	border()
	line(printable(columns))
	border()
	for _, r := range cells {
		line(r)
	}
	border()
	_, _ = io.WriteString(w, b.String())
}

func printable(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = escapeControl(s)
	}
	return out
}

// Cell renders one value of rqlite's JSON (decoded with UseNumber, blobs
// as byte arrays from ?blob_array).
func Cell(v any) string {
	switch x := v.(type) {
	case nil:
		return "NULL"
	case string:
		return escapeControl(x)
	case json.Number:
		return x.String()
	case []any:
		if b, ok := bytesOf(x); ok {
			return fmt.Sprintf("X'%X'", b)
		}
	case bool:
		if x {
			return "1"
		}
		return "0"
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

// bytesOf reads a ?blob_array value: numbers 0..255.
func bytesOf(a []any) ([]byte, bool) {
	out := make([]byte, 0, len(a))
	for _, e := range a {
		var n int64
		switch x := e.(type) {
		case json.Number:
			i, err := x.Int64()
			if err != nil {
				return nil, false
			}
			n = i
		case float64:
			n = int64(x)
		default:
			return nil, false
		}
		if n < 0 || n > 255 {
			return nil, false
		}
		out = append(out, byte(n))
	}
	return out, true
}

// escapeControl keeps a cell on one line: control characters would break
// the table's rows.
func escapeControl(s string) string {
	if !strings.ContainsFunc(s, unicode.IsControl) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case unicode.IsControl(r):
			fmt.Fprintf(&b, `\x%02x`, r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// displayWidth is how many terminal columns s takes.
func displayWidth(s string) int {
	n := 0
	for _, r := range s {
		n += runeWidth(r)
	}
	return n
}

func runeWidth(r rune) int {
	switch {
	case r == 0x200B || r == 0x200C || r == 0x200D || r == 0xFEFF:
		return 0
	case unicode.In(r, unicode.Mn, unicode.Me):
		return 0
	case isWide(r):
		return 2
	}
	return 1
}

// wide are the East Asian Wide and Fullwidth blocks and the emoji
// planes: the characters terminals draw two columns wide.
var wide = [][2]rune{
	{0x1100, 0x115F}, {0x2E80, 0x303E}, {0x3041, 0x33FF}, {0x3400, 0x4DBF},
	{0x4E00, 0x9FFF}, {0xA000, 0xA4CF}, {0xAC00, 0xD7A3}, {0xF900, 0xFAFF},
	{0xFE30, 0xFE4F}, {0xFF00, 0xFF60}, {0xFFE0, 0xFFE6}, {0x1F300, 0x1F64F},
	{0x1F900, 0x1F9FF}, {0x20000, 0x2FFFD}, {0x30000, 0x3FFFD},
}

func isWide(r rune) bool {
	i := sort.Search(len(wide), func(i int) bool { return wide[i][1] >= r })
	return i < len(wide) && r >= wide[i][0]
}

// WriteJSONTree prints a decoded JSON object as rqlite's CLI prints
// /status and /nodes: "key: value" lines, nested objects indented two
// spaces under "key:", null values left out. Keys are sorted so the
// output is stable (rqlite's order is Go's map order, i.e. random).
func WriteJSONTree(w io.Writer, m map[string]any) {
	writeTree(w, 0, m)
}

func writeTree(w io.Writer, indent int, m map[string]any) {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	pad := strings.Repeat("  ", indent)
	for _, k := range keys {
		switch v := m[k].(type) {
		case nil:
		case map[string]any:
			fmt.Fprintf(w, "%s%s:\n", pad, k)
			writeTree(w, indent+1, v)
		default:
			fmt.Fprintf(w, "%s%s: %v\n", pad, k, v)
		}
	}
}
