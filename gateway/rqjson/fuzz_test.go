package rqjson

import (
	"errors"
	"net/url"
	"reflect"
	"strings"
	"testing"
)

// Seeds live in testdata/fuzz/<FuzzName>/ so that plain `go test` replays
// them, including any crasher a fuzz run ever found.

func FuzzParseStatements(f *testing.F) {
	f.Fuzz(func(t *testing.T, body []byte, textPlain bool) {
		ct := "application/json"
		if textPlain {
			ct = "text/plain; charset=utf-8"
		}
		stmts, err := ParseStatements(body, ct)
		if err != nil {
			if stmts != nil {
				t.Fatalf("statements %v returned with error %v", stmts, err)
			}
			if !errors.Is(err, ErrInvalidJSON) && !errors.Is(err, ErrInvalidRequest) &&
				!errors.Is(err, ErrNoStatements) && !errors.Is(err, ErrUnsupportedType) {
				t.Fatalf("error %q is none of the sentinels", err)
			}
			if errors.Is(err, ErrUnsupportedType) && !strings.HasPrefix(err.Error(), "unsupported type") {
				t.Fatalf("error text %q does not start with unsupported type", err)
			}
			return
		}
		if len(stmts) == 0 {
			t.Fatal("nil error with no statements")
		}
		if textPlain && (len(stmts) != 1 || stmts[0].GetSql() != string(body)) {
			t.Fatalf("text/plain: got %v, want the body as one statement", stmts)
		}
		for i, s := range stmts {
			if s.GetSql() == "" {
				t.Fatalf("statement %d has empty SQL", i)
			}
			if s.GetReturnsRows() != HasReturning(s.GetSql()) {
				t.Fatalf("statement %d: ReturnsRows=%v, HasReturning=%v", i, s.GetReturnsRows(), !s.GetReturnsRows())
			}
			for j, p := range s.GetParameters() {
				if p == nil {
					t.Fatalf("statement %d: parameter %d is nil", i, j)
				}
			}
		}
	})
}

func FuzzParseParams(f *testing.F) {
	for _, seed := range []string{"level=none", "level=none&timeout=1s&pretty", "q=SELECT+1&level=strong", "a;b&level=weak",
		"&&level=&&freshness=1s&freshness_strict", "level=none&level=weak", "le%76el=none", "a=1&b=2&c=3&d=4&e=5&f=6&g=7&h=8&i=9&j=10&k=11&l=12&level=none"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, rawQuery string) {
		v, _ := url.ParseQuery(rawQuery) // keeps what parsed; the server does the same
		p, err := ParseParams(v)
		// The gateway's quick path reads the raw query itself: the same
		// answer, error included.
		if rp, rerr := ParseRawQuery(rawQuery); !reflect.DeepEqual(rp, p) || (rerr == nil) != (err == nil) || (err != nil && rerr.Error() != err.Error()) {
			t.Fatalf("ParseRawQuery(%q) = %+v, %v; ParseParams(url.ParseQuery) = %+v, %v", rawQuery, rp, rerr, p, err)
		}
		if err != nil {
			if !errors.Is(err, ErrBadParam) {
				t.Fatalf("error %q does not match ErrBadParam", err)
			}
			msg := err.Error()
			if !strings.HasSuffix(msg, " is not a valid duration") && !strings.HasSuffix(msg, " is not a valid integer") &&
				msg != "freshness_strict requires freshness" && msg != "query parameter not set" {
				t.Fatalf("unexpected error text %q", msg)
			}
			return
		}
		switch p.Level {
		case "", "none", "weak", "linearizable", "strong", "auto":
		default:
			t.Fatalf("level %q not normalised", p.Level)
		}
		if p.HasQ && p.Q == "" {
			t.Fatal("empty q accepted")
		}
		if p.FreshnessStrict && !v.Has("freshness") {
			t.Fatal("freshness_strict accepted without freshness")
		}
		if p.Pretty != v.Has("pretty") || p.Timings != v.Has("timings") {
			t.Fatal("flags are not presence-only")
		}
		for _, tbl := range p.Tables {
			if tbl == "" || strings.Contains(tbl, ",") {
				t.Fatalf("bad table name %q", tbl)
			}
		}
	})
}
