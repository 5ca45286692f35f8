package rqjson

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"slices"
	"strconv"
	"strings"

	"github.com/skiffdb/skiff/sm/cmdpb"
)

// Options selects the response variants of API.md 1.2 and 1.4.
type Options struct {
	Pretty, Timings, Associative, BlobArray bool
	// WriteRowsNull adds "rows":null to write results when Associative
	// (true on /db/execute and /db/request, API.md 1.4).
	WriteRowsNull bool
}

// Envelope holds the top-level fields around "results" (API.md 1.4).
type Envelope struct {
	Error          string
	Time           float64 // emitted only with Options.Timings
	SequenceNumber int64   // queued writes; omitted if 0
	RaftIndex      uint64  // ?raft_index; omitted if 0
}

// AppendResponse appends the response object for results to dst:
//
//	{"results":[...],"error":"...","time":t,"sequence_number":N,"raft_index":N}
//
// where every key but results is omitted when empty. The compact form is
// byte-identical to what rqlite's encoding/json-based encoder writes; with
// Pretty it is indented by four spaces like json.MarshalIndent.
func AppendResponse(dst []byte, results []*cmdpb.StatementResult, env Envelope, opts Options) []byte {
	if opts.Pretty {
		return appendIndented(dst, appendResponse(nil, results, env, opts))
	}
	return appendResponse(dst, results, env, opts)
}

// AppendError appends a request-level error response,
// {"results":[],"error":"msg"} (API.md 1.4), omitting error if msg is empty.
func AppendError(dst []byte, msg string, pretty bool) []byte {
	return AppendResponse(dst, nil, Envelope{Error: msg}, Options{Pretty: pretty})
}

func appendResponse(dst []byte, results []*cmdpb.StatementResult, env Envelope, opts Options) []byte {
	dst = append(dst, `{"results":[`...)
	for i, r := range results {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendResult(dst, r, opts)
	}
	dst = append(dst, ']')
	if env.Error != "" {
		dst = append(dst, `,"error":`...)
		dst = appendString(dst, env.Error)
	}
	if opts.Timings && env.Time != 0 {
		dst = append(dst, `,"time":`...)
		dst = appendFloat(dst, env.Time)
	}
	if env.SequenceNumber != 0 {
		dst = append(dst, `,"sequence_number":`...)
		dst = strconv.AppendInt(dst, env.SequenceNumber, 10)
	}
	if env.RaftIndex != 0 {
		dst = append(dst, `,"raft_index":`...)
		dst = strconv.AppendUint(dst, env.RaftIndex, 10)
	}
	return append(dst, '}')
}

// appendIndented re-indents compact JSON as json.MarshalIndent(v, "", "    ").
func appendIndented(dst, compact []byte) []byte {
	buf := bytes.NewBuffer(dst)
	if err := json.Indent(buf, compact, "", "    "); err != nil {
		// Unreachable: compact is always valid JSON. Stay correct anyway.
		return append(dst, compact...)
	}
	return buf.Bytes()
}

// appendKey appends "key": preceded by a comma unless it opens the object;
// a value never ends in '{', so the previous byte tells which.
func appendKey(dst []byte, key string) []byte {
	if dst[len(dst)-1] != '{' {
		dst = append(dst, ',')
	}
	dst = append(dst, '"')
	dst = append(dst, key...)
	return append(dst, '"', ':')
}

func appendResultTime(dst []byte, r *cmdpb.StatementResult, opts Options) []byte {
	if t := r.GetTime(); opts.Timings && t != 0 {
		dst = appendKey(dst, "time")
		dst = appendFloat(dst, t)
	}
	return dst
}

// appendResult appends one element of "results" (API.md 1.4).
func appendResult(dst []byte, r *cmdpb.StatementResult, opts Options) []byte {
	dst = append(dst, '{')
	switch {
	case r.GetError() != "":
		// rqlite reports a failed statement of any kind as a bare error
		// object, so neither columns nor "rows":null accompany it.
		dst = appendKey(dst, "error")
		dst = appendString(dst, r.GetError())
		dst = appendResultTime(dst, r, opts)
	case !r.GetIsQuery():
		if v := r.GetLastInsertId(); v != 0 {
			dst = appendKey(dst, "last_insert_id")
			dst = strconv.AppendInt(dst, v, 10)
		}
		if v := r.GetRowsAffected(); v != 0 {
			dst = appendKey(dst, "rows_affected")
			dst = strconv.AppendInt(dst, v, 10)
		}
		dst = appendResultTime(dst, r, opts)
		if opts.Associative && opts.WriteRowsNull {
			// Lets associative clients tell a write from an empty query.
			dst = appendKey(dst, "rows")
			dst = append(dst, "null"...)
		}
	case opts.Associative:
		dst = appendAssociative(dst, r, opts)
	default:
		dst = appendRows(dst, r, opts)
	}
	return append(dst, '}')
}

// appendRows writes the fields of a query result in array form:
// "columns", "types" and "values", each omitted when empty.
func appendRows(dst []byte, r *cmdpb.StatementResult, opts Options) []byte {
	cols, rows := r.GetColumns(), r.GetRows()
	ct := newColTypes(r)
	if len(cols) > 0 {
		dst = appendKey(dst, "columns")
		dst = append(dst, '[')
		for i, c := range cols {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendString(dst, c)
		}
		dst = append(dst, ']')
		dst = appendKey(dst, "types")
		dst = append(dst, '[')
		for i := range cols {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendString(dst, ct.filled(i))
		}
		dst = append(dst, ']')
	}
	if len(rows) > 0 {
		dst = appendKey(dst, "values")
		dst = append(dst, '[')
		for i, row := range rows {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = append(dst, '[')
			for j, v := range row.GetValues() {
				if j > 0 {
					dst = append(dst, ',')
				}
				dst = appendValue(dst, v, ct.declared(j), opts)
			}
			dst = append(dst, ']')
		}
		dst = append(dst, ']')
	}
	return appendResultTime(dst, r, opts)
}

// appendAssociative writes a query result in ?associative form. rqlite
// builds Go maps here, so keys come out sorted and a repeated column name
// keeps only its last column; the same happens below.
func appendAssociative(dst []byte, r *cmdpb.StatementResult, opts Options) []byte {
	cols := r.GetColumns()
	ct := newColTypes(r)
	order := mapOrder(cols)
	if len(order) > 0 {
		dst = appendKey(dst, "types")
		dst = append(dst, '{')
		for i, k := range order {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendString(dst, cols[k])
			dst = append(dst, ':')
			dst = appendString(dst, ct.filled(k))
		}
		dst = append(dst, '}')
	}
	// rows is not omitempty: an empty result is "rows":[].
	dst = appendKey(dst, "rows")
	dst = append(dst, '[')
	for i, row := range r.GetRows() {
		if i > 0 {
			dst = append(dst, ',')
		}
		vals := row.GetValues()
		dst = append(dst, '{')
		for j, k := range order {
			if j > 0 {
				dst = append(dst, ',')
			}
			dst = appendString(dst, cols[k])
			dst = append(dst, ':')
			var v *cmdpb.Value
			if k < len(vals) {
				v = vals[k]
			}
			dst = appendValue(dst, v, ct.declared(k), opts)
		}
		dst = append(dst, '}')
	}
	dst = append(dst, ']')
	return appendResultTime(dst, r, opts)
}

// mapOrder returns the column indexes in encoding/json map order: sorted
// by name, one per distinct name, the last column winning as in m[c] = v.
func mapOrder(cols []string) []int {
	if len(cols) == 0 {
		return nil
	}
	idx := make([]int, len(cols))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int { return strings.Compare(cols[a], cols[b]) })
	out := idx[:0]
	for j, k := range idx {
		if j+1 < len(idx) && cols[idx[j+1]] == cols[k] {
			continue
		}
		out = append(out, k)
	}
	return out
}

// colTypes answers the declared and reported type of each column.
type colTypes struct {
	decl  []string
	first *cmdpb.Row // first row, nil if none
	stop  int        // columns from here on are not filled in
}

// newColTypes mirrors rqlite's populateEmptyTypes (API.md 1.4): a column
// without a declared type reports the kind of its first-row value. rqlite
// gives up at the first such column whose first value is NULL, leaving that
// column and every later undeclared one as "".
func newColTypes(r *cmdpb.StatementResult) colTypes {
	ct := colTypes{decl: r.GetTypes(), stop: len(r.GetColumns())}
	if rows := r.GetRows(); len(rows) > 0 {
		ct.first = rows[0]
	}
	if ct.first == nil {
		return ct
	}
	vals := ct.first.GetValues()
	for i := 0; i < ct.stop; i++ {
		if ct.declared(i) == "" && (i >= len(vals) || vals[i].GetV() == nil) {
			ct.stop = i
			break
		}
	}
	return ct
}

func (ct colTypes) declared(i int) string {
	if i < len(ct.decl) {
		return ct.decl[i]
	}
	return ""
}

func (ct colTypes) filled(i int) string {
	d := ct.declared(i)
	if d != "" || ct.first == nil || i >= ct.stop {
		return d
	}
	switch ct.first.GetValues()[i].GetV().(type) {
	case *cmdpb.Value_I:
		return "integer"
	case *cmdpb.Value_D:
		return "real"
	case *cmdpb.Value_B:
		return "boolean"
	default:
		// Text, time, and also blobs: with no declared type a blob is
		// text-like and is emitted (so reported) as a string, as in rqlite.
		return "text"
	}
}

// appendValue encodes one cell as API.md 1.5 says. decl is the column's
// declared type, which decides whether a blob is emitted as text.
func appendValue(dst []byte, v *cmdpb.Value, decl string, opts Options) []byte {
	switch x := v.GetV().(type) {
	case *cmdpb.Value_I:
		return strconv.AppendInt(dst, x.I, 10)
	case *cmdpb.Value_D:
		return appendFloat(dst, x.D)
	case *cmdpb.Value_S:
		return appendString(dst, x.S)
	case *cmdpb.Value_B:
		return strconv.AppendBool(dst, x.B)
	case *cmdpb.Value_T:
		// Already formatted (RFC 3339) by the state machine.
		return appendString(dst, x.T)
	case *cmdpb.Value_Y:
		if isTextType(decl) {
			return appendString(dst, x.Y)
		}
		if opts.BlobArray {
			dst = append(dst, '[')
			for i, b := range x.Y {
				if i > 0 {
					dst = append(dst, ',')
				}
				dst = strconv.AppendUint(dst, uint64(b), 10)
			}
			return append(dst, ']')
		}
		dst = append(dst, '"')
		dst = base64.StdEncoding.AppendEncode(dst, x.Y)
		return append(dst, '"')
	}
	return append(dst, "null"...)
}

// textTypePrefixes are the declared-type prefixes that rqlite's isTextType
// treats as text (besides exactly "text", "json" and no declared type).
var textTypePrefixes = [...]string{
	"varchar", "varying character", "nchar", "native character", "nvarchar", "clob",
}

// isTextType reports whether blob bytes in a column of declared type decl
// come out as a string rather than base64 (API.md 1.5).
func isTextType(decl string) bool {
	if decl == "" || strings.EqualFold(decl, "text") || strings.EqualFold(decl, "json") {
		return true
	}
	for _, p := range textTypePrefixes {
		if len(decl) >= len(p) && strings.EqualFold(decl[:len(p)], p) {
			return true
		}
	}
	return false
}
