package rqjson

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/skiffdb/skiff/sm/cmdpb"
)

// parseWithDecoder is ParseStatements reading its tokens through
// json.Decoder, as it did before tokens: the reference tokens must match.
func parseWithDecoder(body []byte) ([]*cmdpb.Statement, error) {
	if len(trimJSONSpace(body)) == 0 {
		return nil, ErrNoStatements
	}
	if !json.Valid(body) {
		return nil, ErrInvalidJSON
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	return parseStatements(dec)
}

// sameParse fails t unless ParseStatements and the Decoder reference agree
// on body: the same statements, or the same error text.
func sameParse(t *testing.T, body []byte) {
	t.Helper()
	got, gerr := ParseStatements(body, "application/json")
	want, werr := parseWithDecoder(body)
	if (gerr == nil) != (werr == nil) || gerr != nil && gerr.Error() != werr.Error() {
		t.Fatalf("body %q: error %v, the Decoder's %v", body, gerr, werr)
	}
	if len(got) != len(want) {
		t.Fatalf("body %q: %d statements, the Decoder's %d", body, len(got), len(want))
	}
	for i := range got {
		if !proto.Equal(got[i], want[i]) {
			t.Fatalf("body %q: statement %d is %v, the Decoder's %v", body, i, got[i], want[i])
		}
	}
}

// tokenCases are bodies whose tokens are easy to get wrong by hand.
var tokenCases = []string{
	`["SELECT 1"]`,
	` [ "SELECT 1" , [ "SELECT ?" , 1 ] ] `,
	"\t[\n\"SELECT 1\"\r]\n",
	`[["SELECT ?", 0, -0, 1.5, -2e3, 1E+2, 9223372036854775807, 9223372036854775808, -9223372036854775809, 1e400, 0.000001]]`,
	`[["SELECT ?", true, false, null]]`,
	`[["SELECT ?", "x'00ff'", "X'AB'", "x'abc'", "x'zz'", ""]]`,
	`[["SELECT ?", [0, 1, 255]], ["SELECT ?", []], ["SELECT ?", [256]], ["SELECT ?", [-1]]]`,
	`[["SELECT ?", [1.5]]]`,
	`[["SELECT ?", ["a"]]]`,
	`[["SELECT ?", [[1]]]]`,
	`[["SELECT ?", [{}]]]`,
	`[["SELECT ?", [null]]]`,
	`[["SELECT ?", [true]]]`,
	`[["SELECT :a, :b", {"b": 2, "a": "x", ":a": 3, "$c": null, "@d": [1, 2]}]]`,
	`[["SELECT :a", {"a": {"nested": 1}}]]`,
	`[["SELECT :a", {"": 1}]]`,
	`[["SELECT :a", {":": 1}]]`,
	`[["SELECT :a", {"a\u0000b": 1}]]`,
	`[["SELECT :a", {}]]`,
	`[["SELECT '\"quoted\\\\'", "tab\there", "nl\n", "\/slash", "\u00e9\u4e2d", "\ud83d\ude00"]]`,
	`[["SELECT ?", "\ud800", "\udc00x", "\ud800\u0041", "\\u0041"]]`,
	"[[\"SELECT ?\", \"\xff\xfe bad utf-8\", \"caf\xc3\xa9\", \"\xed\xa0\x80\"]]",
	"[\"SELECT '\xe2\x82'\"]",
	`[""]`,
	`["", "SELECT 1", ""]`,
	`[[""]]`,
	`[]`,
	`null`,
	`{}`,
	`"SELECT 1"`,
	`1`,
	`true`,
	`[1]`,
	`[null]`,
	`[true]`,
	`[{}]`,
	`[{"sql": "SELECT 1"}]`,
	`[[]]`,
	`[[1, "SELECT 1"]]`,
	`[[null]]`,
	`[[["SELECT 1"]]]`,
	`[["SELECT 1"], "SELECT 2", ["SELECT ?", 3]]`,
	`["SELECT 1" "SELECT 2"]`,
	`["SELECT 1",]`,
	`[["SELECT ?", 01]]`,
	`[["SELECT ?", NaN]]`,
	`[["SELECT ?", nul]]`,
	`["SELECT 1"] x`,
	`["SELECT 1"`,
	`   `,
	``,
	strings.Repeat("[", 10001) + strings.Repeat("]", 10001),
	`[` + strings.Repeat(`["SELECT ?", 1],`, 200) + `"SELECT 2"]`,
}

func TestTokensMatchDecoder(t *testing.T) {
	for _, c := range tokenCases {
		sameParse(t, []byte(c))
	}
}

// FuzzTokensMatchDecoder runs ParseStatements against the Decoder
// reference on any body, seeded with tokenCases and FuzzParseStatements'
// corpus.
func FuzzTokensMatchDecoder(f *testing.F) {
	for _, c := range tokenCases {
		f.Add([]byte(c))
	}
	seeds, _ := filepath.Glob(filepath.Join("testdata", "fuzz", "FuzzParseStatements", "*"))
	for _, path := range seeds {
		b, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		// The corpus format: a header line, then []byte("...") and bool(...).
		for _, line := range strings.Split(string(b), "\n") {
			if body, ok := strings.CutPrefix(line, "[]byte("); ok {
				if s, err := strconv.Unquote(strings.TrimSuffix(body, ")")); err == nil {
					f.Add([]byte(s))
				}
			}
		}
	}
	f.Fuzz(func(t *testing.T, body []byte) { sameParse(t, body) })
}

func TestTokensOnInvalidInput(t *testing.T) {
	// Outside its contract (input json.Valid refused) tokens errs; it must
	// not panic or loop.
	for _, c := range []string{`"abc`, `"abc\`, `tru`, `nul`, `fals`, `x`, ``, `[`, `"\`} {
		tk := &tokens{b: []byte(c)}
		for range 10 {
			if _, err := tk.Token(); err != nil {
				break
			}
		}
	}
}
