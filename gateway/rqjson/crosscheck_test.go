package rqjson

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/skiffdb/skiff/sm/cmdpb"
)

// The reference model below is the encoding/json view of a response, built
// the way rqlite builds it (structs with omitempty, maps for associative
// rows). AppendResponse must produce the same bytes as json.Marshal of it.

type refExec struct {
	LastInsertID int64   `json:"last_insert_id,omitempty"`
	RowsAffected int64   `json:"rows_affected,omitempty"`
	Error        string  `json:"error,omitempty"`
	Time         float64 `json:"time,omitempty"`
}

type refExecRows struct {
	refExec
	Rows []map[string]any `json:"rows"`
}

type refRows struct {
	Columns []string `json:"columns,omitempty"`
	Types   []string `json:"types,omitempty"`
	Values  [][]any  `json:"values,omitempty"`
	Error   string   `json:"error,omitempty"`
	Time    float64  `json:"time,omitempty"`
}

type refAssoc struct {
	Types map[string]string `json:"types,omitempty"`
	Rows  []map[string]any  `json:"rows"`
	Error string            `json:"error,omitempty"`
	Time  float64           `json:"time,omitempty"`
}

type refTop struct {
	Results        []any   `json:"results"`
	Error          string  `json:"error,omitempty"`
	Time           float64 `json:"time,omitempty"`
	SequenceNumber int64   `json:"sequence_number,omitempty"`
	RaftIndex      uint64  `json:"raft_index,omitempty"`
}

// refTypes is an independent statement of the populateEmptyTypes rule.
func refTypes(r *cmdpb.StatementResult) []string {
	types := make([]string, len(r.Columns))
	copy(types, r.Types)
	if len(r.Rows) == 0 {
		return types
	}
	first := r.Rows[0].GetValues()
	for i := range types {
		if types[i] != "" {
			continue
		}
		var v any
		if i < len(first) {
			v = first[i].GetV()
		}
		switch v.(type) {
		case *cmdpb.Value_I:
			types[i] = "integer"
		case *cmdpb.Value_D:
			types[i] = "real"
		case *cmdpb.Value_B:
			types[i] = "boolean"
		case *cmdpb.Value_S, *cmdpb.Value_T, *cmdpb.Value_Y:
			types[i] = "text"
		default:
			return types
		}
	}
	return types
}

func refValue(v *cmdpb.Value, decl string, blobArray bool) any {
	switch x := v.GetV().(type) {
	case *cmdpb.Value_I:
		return x.I
	case *cmdpb.Value_D:
		if math.IsNaN(x.D) || math.IsInf(x.D, 0) {
			return nil
		}
		return x.D
	case *cmdpb.Value_S:
		return x.S
	case *cmdpb.Value_T:
		return x.T
	case *cmdpb.Value_B:
		return x.B
	case *cmdpb.Value_Y:
		if isTextType(decl) {
			return string(x.Y)
		}
		if blobArray {
			a := make([]int, len(x.Y))
			for i, b := range x.Y {
				a[i] = int(b)
			}
			return a
		}
		if x.Y == nil {
			return []byte{} // encoding/json writes nil as null; rqlite never has nil blobs
		}
		return x.Y
	}
	return nil
}

func refModel(results []*cmdpb.StatementResult, env Envelope, opts Options) refTop {
	timed := func(t float64) float64 {
		if opts.Timings {
			return t
		}
		return 0
	}
	top := refTop{Results: []any{}, Error: env.Error, Time: timed(env.Time), SequenceNumber: env.SequenceNumber, RaftIndex: env.RaftIndex}
	for _, r := range results {
		decl := func(i int) string {
			if i < len(r.Types) {
				return r.Types[i]
			}
			return ""
		}
		switch {
		case r.Error != "":
			top.Results = append(top.Results, refExec{Error: r.Error, Time: timed(r.Time)})
		case !r.IsQuery:
			e := refExec{LastInsertID: r.LastInsertId, RowsAffected: r.RowsAffected, Time: timed(r.Time)}
			if opts.Associative && opts.WriteRowsNull {
				top.Results = append(top.Results, refExecRows{refExec: e})
			} else {
				top.Results = append(top.Results, e)
			}
		case opts.Associative:
			types := refTypes(r)
			a := refAssoc{Types: map[string]string{}, Rows: []map[string]any{}, Time: timed(r.Time)}
			for i, c := range r.Columns {
				a.Types[c] = types[i]
			}
			for _, row := range r.Rows {
				m := map[string]any{}
				for i, c := range r.Columns {
					var v *cmdpb.Value
					if i < len(row.Values) {
						v = row.Values[i]
					}
					m[c] = refValue(v, decl(i), opts.BlobArray)
				}
				a.Rows = append(a.Rows, m)
			}
			top.Results = append(top.Results, a)
		default:
			q := refRows{Columns: r.Columns, Types: refTypes(r), Time: timed(r.Time)}
			for _, row := range r.Rows {
				vals := []any{}
				for i, v := range row.Values {
					vals = append(vals, refValue(v, decl(i), opts.BlobArray))
				}
				q.Values = append(q.Values, vals)
			}
			top.Results = append(top.Results, q)
		}
	}
	return top
}

// Pieces that exercise every escaping rule of encoding/json.
var stringPieces = []string{
	"a", "Z", " ", "fiona", "<", ">", "&", "\"", "\\", "/", "\n", "\r", "\t", "\b", "\f",
	"\x00", "\x01", "\x1f", "\x7f", "\u2028", "\u2029", "\u2027", "\u202a", "é", "こんにちは",
	"\U0001F600", "\ufffd", "\xff", "\xc3", "\xe2\x80", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xc0\xaf",
}

func randString(rng *rand.Rand) string {
	var b []byte
	for range rng.IntN(6) {
		b = append(b, stringPieces[rng.IntN(len(stringPieces))]...)
	}
	return string(b)
}

var specialFloats = []float64{
	0, math.Copysign(0, -1), 1, -1, 0.1, 1e-6, 1e-7, 9.999999e-7, 1e20, 1e21, 9.99999999e20,
	-1e21, 1e-300, 5e-324, math.MaxFloat64, math.SmallestNonzeroFloat64, 123456789.125,
	1e-10, 2.5e-9, math.NaN(), math.Inf(1), math.Inf(-1), 1.7976931348623157e308, 0.000001234,
}

func randFloat(rng *rand.Rand) float64 {
	switch rng.IntN(3) {
	case 0:
		return specialFloats[rng.IntN(len(specialFloats))]
	case 1:
		return math.Float64frombits(rng.Uint64())
	}
	return rng.NormFloat64() * math.Pow(10, float64(rng.IntN(60)-30))
}

var declTypes = []string{"", "", "integer", "real", "text", "blob", "json", "varchar(255)", "nchar(3)",
	"clob", "datetime", "boolean", "char(2)", "numeric", "native character(4)", "varying character"}

func randValue(rng *rand.Rand) *cmdpb.Value {
	switch rng.IntN(8) {
	case 0:
		return vNull()
	case 1:
		return vI(int64(rng.Uint64()))
	case 2:
		return vD(randFloat(rng))
	case 3:
		return vS(randString(rng))
	case 4:
		return vB(rng.IntN(2) == 0)
	case 5:
		return vT(randString(rng))
	}
	b := make([]byte, rng.IntN(6))
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	if rng.IntN(3) == 0 {
		b = append(b, randString(rng)...)
	}
	return vY(b)
}

func randResult(rng *rand.Rand) *cmdpb.StatementResult {
	r := &cmdpb.StatementResult{}
	if rng.IntN(2) == 0 {
		r.Time = randFloat(rng)
	}
	switch rng.IntN(4) {
	case 0:
		r.Error = randString(rng)
		if r.Error == "" {
			r.Error = "x"
		}
		return r
	case 1:
		r.LastInsertId = int64(rng.Uint64()) >> rng.IntN(64)
		r.RowsAffected = int64(rng.IntN(3))
		return r
	}
	r.IsQuery = true
	ncols := rng.IntN(5)
	for range ncols {
		name := randString(rng)
		if rng.IntN(4) == 0 && len(r.Columns) > 0 {
			name = r.Columns[rng.IntN(len(r.Columns))] // duplicate column names
		}
		r.Columns = append(r.Columns, name)
		r.Types = append(r.Types, declTypes[rng.IntN(len(declTypes))])
	}
	for range rng.IntN(4) {
		row := &cmdpb.Row{}
		for range ncols {
			row.Values = append(row.Values, randValue(rng))
		}
		r.Rows = append(r.Rows, row)
	}
	return r
}

func TestAppendResponseMatchesEncodingJSON(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 20000 {
		var results []*cmdpb.StatementResult
		for range rng.IntN(4) {
			results = append(results, randResult(rng))
		}
		env := Envelope{}
		if rng.IntN(3) == 0 {
			env.Error = randString(rng)
		}
		if rng.IntN(2) == 0 {
			env.Time = math.Abs(randFloat(rng))
		}
		if rng.IntN(3) == 0 {
			env.SequenceNumber = int64(rng.Uint64())
		}
		if rng.IntN(3) == 0 {
			env.RaftIndex = rng.Uint64()
		}
		opts := Options{
			Timings:       rng.IntN(2) == 0,
			Associative:   rng.IntN(2) == 0,
			BlobArray:     rng.IntN(2) == 0,
			WriteRowsNull: rng.IntN(2) == 0,
		}
		if (opts.Timings && (math.IsNaN(env.Time) || math.IsInf(env.Time, 0))) || hasBadTime(results, opts) {
			continue // encoding/json refuses these; we write null, checked elsewhere
		}
		ref := refModel(results, env, opts)
		want, err := json.Marshal(ref)
		if err != nil {
			t.Fatalf("case %d: reference marshal: %v", i, err)
		}
		got := AppendResponse(nil, results, env, opts)
		if !bytes.Equal(got, want) {
			t.Fatalf("case %d (opts %+v):\n got %s\nwant %s", i, opts, got, want)
		}
		opts.Pretty = true
		wantPretty, err := json.MarshalIndent(ref, "", "    ")
		if err != nil {
			t.Fatal(err)
		}
		if gotPretty := AppendResponse(nil, results, env, opts); !bytes.Equal(gotPretty, wantPretty) {
			t.Fatalf("case %d pretty:\n got %s\nwant %s", i, gotPretty, wantPretty)
		}
	}
}

func hasBadTime(results []*cmdpb.StatementResult, opts Options) bool {
	for _, r := range results {
		if opts.Timings && (math.IsNaN(r.Time) || math.IsInf(r.Time, 0)) {
			return true
		}
	}
	return false
}

func TestAppendStringMatchesEncodingJSON(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	check := func(s string) {
		want, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if got := appendString(nil, s); !bytes.Equal(got, want) {
			t.Fatalf("appendString(%q) = %s, want %s", s, got, want)
		}
		if got := appendString(nil, []byte(s)); !bytes.Equal(got, want) {
			t.Fatalf("appendString([]byte(%q)) = %s, want %s", s, got, want)
		}
	}
	for c := range 256 {
		check(string([]byte{byte(c)}))
		check("ab" + string([]byte{byte(c)}) + "cd")
	}
	for r := rune(0); r < 0x3000; r++ {
		check(string(r))
	}
	for range 50000 {
		b := make([]byte, rng.IntN(12))
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		check(string(b))
		check(randString(rng))
	}
}

func TestAppendFloatMatchesEncodingJSON(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	check := func(f float64) {
		if math.IsNaN(f) || math.IsInf(f, 0) {
			if got := string(appendFloat(nil, f)); got != "null" {
				t.Fatalf("appendFloat(%v) = %s, want null", f, got)
			}
			return
		}
		want, err := json.Marshal(f)
		if err != nil {
			t.Fatal(err)
		}
		if got := appendFloat(nil, f); !bytes.Equal(got, want) {
			t.Fatalf("appendFloat(%v) = %s, want %s", f, got, want)
		}
	}
	for _, f := range specialFloats {
		check(f)
		check(-f)
	}
	for e := -330; e <= 310; e++ {
		check(math.Pow(10, float64(e)))
		check(1.5 * math.Pow(10, float64(e)))
		check(math.Nextafter(math.Pow(10, float64(e)), 0))
	}
	for range 200000 {
		check(randFloat(rng))
	}
}
