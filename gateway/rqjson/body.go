package rqjson

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"mime"
	"slices"
	"strconv"
	"strings"

	"github.com/skiffdb/skiff/sm/cmdpb"
)

// ParseStatements turns a request body into statements (API.md 1.3).
//
// With a text/plain content type (parameters such as charset are ignored)
// the whole body is one statement. Anything else is parsed as JSON: an array
// whose elements are either SQL strings or arrays [sql, args...], where an
// object argument spreads into named parameters. Empty SQL strings are
// skipped. Statements containing RETURNING are marked ReturnsRows.
//
// Errors are ErrInvalidJSON, ErrInvalidRequest, ErrNoStatements, or wrap
// ErrUnsupportedType; it never panics.
func ParseStatements(body []byte, contentType string) ([]*cmdpb.Statement, error) {
	if isTextPlain(contentType) {
		if len(body) == 0 {
			return nil, ErrNoStatements
		}
		sql := string(body)
		return []*cmdpb.Statement{{Sql: sql, ReturnsRows: HasReturning(sql)}}, nil
	}

	if len(trimJSONSpace(body)) == 0 {
		return nil, ErrNoStatements
	}
	// Validate up front so that a syntax error anywhere is reported as
	// invalid JSON, even when an earlier element would already be an invalid
	// request; the token walk below then only has to judge shape.
	if !json.Valid(body) {
		return nil, ErrInvalidJSON
	}
	return parseStatements(&tokens{b: body})
}

// tokenSource is json.Decoder's token API (with UseNumber). ParseStatements
// reads through tokens; the tests check it against json.Decoder.
type tokenSource interface {
	Token() (json.Token, error)
	More() bool
}

// parseStatements walks a valid JSON body's tokens into statements.
func parseStatements(dec tokenSource) ([]*cmdpb.Statement, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, ErrInvalidJSON
	}
	if tok == nil {
		// rqlite unmarshals into a slice, which null leaves empty.
		return nil, ErrNoStatements
	}
	if d, ok := tok.(json.Delim); !ok || d != '[' {
		return nil, ErrInvalidRequest
	}

	var stmts []*cmdpb.Statement
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, ErrInvalidJSON
		}
		var stmt *cmdpb.Statement
		switch t := tok.(type) {
		case string:
			stmt = &cmdpb.Statement{Sql: t}
		case json.Delim:
			if t != '[' {
				return nil, ErrInvalidRequest
			}
			if stmt, err = parseStatementArray(dec); err != nil {
				return nil, err
			}
		default:
			return nil, ErrInvalidRequest
		}
		if stmt.Sql == "" {
			continue
		}
		stmt.ReturnsRows = HasReturning(stmt.Sql)
		stmts = append(stmts, stmt)
	}
	if len(stmts) == 0 {
		return nil, ErrNoStatements
	}
	return stmts, nil
}

// ParseQueryString builds the statement for GET ?q= (API.md 1.2). It is
// always query-shaped: the GET endpoints only read.
func ParseQueryString(q string) []*cmdpb.Statement {
	if q == "" {
		return nil
	}
	return []*cmdpb.Statement{{Sql: q, ReturnsRows: true}}
}

// isTextPlain compares the media type only, so "text/plain; charset=utf-8"
// counts too.
func isTextPlain(contentType string) bool {
	switch contentType {
	case "", "application/json":
		// The common cases, without ParseMediaType's allocations.
		return false
	case "text/plain":
		return true
	}
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		// Malformed parameters must not turn a text body into JSON.
		mt, _, _ = strings.Cut(contentType, ";")
		mt = strings.ToLower(strings.TrimSpace(mt))
	}
	return mt == "text/plain"
}

// trimJSONSpace trims the four JSON whitespace bytes only, so that other
// Unicode spaces still count as (invalid) content.
func trimJSONSpace(b []byte) []byte {
	isSpace := func(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }
	for len(b) > 0 && isSpace(b[0]) {
		b = b[1:]
	}
	for len(b) > 0 && isSpace(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}

// parseStatementArray parses [sql, args...] after its opening bracket.
func parseStatementArray(dec tokenSource) (*cmdpb.Statement, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, ErrInvalidJSON
	}
	sql, ok := tok.(string)
	if !ok {
		// Covers [] as well as a non-string first element.
		return nil, ErrInvalidRequest
	}
	stmt := &cmdpb.Statement{Sql: sql}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, ErrInvalidJSON
		}
		if d, ok := tok.(json.Delim); ok && d == '{' {
			named, err := parseNamed(dec)
			if err != nil {
				return nil, err
			}
			stmt.Parameters = append(stmt.Parameters, named...)
			continue
		}
		p, err := makeParameter(dec, tok)
		if err != nil {
			return nil, err
		}
		stmt.Parameters = append(stmt.Parameters, p)
	}
	if _, err := dec.Token(); err != nil { // closing ']'
		return nil, ErrInvalidJSON
	}
	return stmt, nil
}

// parseNamed parses an object of named parameters after its opening brace.
// JSON objects are unordered, so parameters are sorted by name to keep the
// replicated command deterministic.
func parseNamed(dec tokenSource) ([]*cmdpb.Parameter, error) {
	type named struct {
		key string // as sent, to order keys that strip to the same name
		p   *cmdpb.Parameter
	}
	var ps []named
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, ErrInvalidJSON
		}
		key, ok := tok.(string)
		if !ok {
			return nil, ErrInvalidJSON
		}
		name := key
		if name != "" && (name[0] == ':' || name[0] == '@' || name[0] == '$') {
			name = name[1:]
		}
		if name == "" {
			// An empty name would read as a positional parameter.
			return nil, ErrInvalidRequest
		}
		tok, err = dec.Token()
		if err != nil {
			return nil, ErrInvalidJSON
		}
		if d, ok := tok.(json.Delim); ok && d == '{' {
			return nil, fmt.Errorf("%w: nested object for parameter %q", ErrUnsupportedType, key)
		}
		p, err := makeParameter(dec, tok)
		if err != nil {
			return nil, err
		}
		p.Name = name
		ps = append(ps, named{key: key, p: p})
	}
	if _, err := dec.Token(); err != nil { // closing '}'
		return nil, ErrInvalidJSON
	}
	slices.SortFunc(ps, func(a, b named) int {
		if c := strings.Compare(a.p.Name, b.p.Name); c != 0 {
			return c
		}
		return strings.Compare(a.key, b.key)
	})
	out := make([]*cmdpb.Parameter, len(ps))
	for i := range ps {
		out[i] = ps[i].p
	}
	return out, nil
}

// makeParameter types one argument as API.md 1.3 "Parameter typing" says.
// tok is the argument's first token; for an array the rest is read from dec.
func makeParameter(dec tokenSource, tok json.Token) (*cmdpb.Parameter, error) {
	switch t := tok.(type) {
	case nil:
		return &cmdpb.Parameter{}, nil // unset value binds NULL
	case bool:
		return &cmdpb.Parameter{Value: &cmdpb.Parameter_B{B: t}}, nil
	case json.Number:
		return numberParameter(string(t))
	case string:
		if b, ok := hexBlob(t); ok {
			return &cmdpb.Parameter{Value: &cmdpb.Parameter_Y{Y: b}}, nil
		}
		return &cmdpb.Parameter{Value: &cmdpb.Parameter_S{S: t}}, nil
	case json.Delim:
		if t != '[' {
			return nil, fmt.Errorf("%w: unexpected %q", ErrUnsupportedType, t.String())
		}
		b, err := byteArray(dec)
		if err != nil {
			return nil, err
		}
		return &cmdpb.Parameter{Value: &cmdpb.Parameter_Y{Y: b}}, nil
	}
	return nil, fmt.Errorf("%w: %T", ErrUnsupportedType, tok)
}

// numberParameter keeps integers exact as int64 and falls back to float64
// for fractions, exponents and integers beyond int64.
func numberParameter(s string) (*cmdpb.Parameter, error) {
	if i, err := strconv.ParseInt(s, 10, 64); err == nil {
		return &cmdpb.Parameter{Value: &cmdpb.Parameter_I{I: i}}, nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return nil, fmt.Errorf("%w: number %s out of range", ErrUnsupportedType, s)
	}
	return &cmdpb.Parameter{Value: &cmdpb.Parameter_D{D: f}}, nil
}

// byteArray reads an array of integers 0-255 after its opening bracket.
func byteArray(dec tokenSource) ([]byte, error) {
	b := []byte{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, ErrInvalidJSON
		}
		n, ok := tok.(json.Number)
		if !ok {
			return nil, fmt.Errorf("%w: array element %v is not a byte", ErrUnsupportedType, tokenString(tok))
		}
		v, err := strconv.ParseInt(string(n), 10, 64)
		if err != nil || v < 0 || v > 255 {
			return nil, fmt.Errorf("%w: array element %s is not a byte", ErrUnsupportedType, n)
		}
		b = append(b, byte(v))
	}
	if _, err := dec.Token(); err != nil { // closing ']'
		return nil, ErrInvalidJSON
	}
	return b, nil
}

func tokenString(tok json.Token) string {
	switch t := tok.(type) {
	case json.Delim:
		return t.String()
	case string:
		return strconv.Quote(t)
	case nil:
		return "null"
	}
	return fmt.Sprint(tok)
}

// hexBlob recognises SQLite's blob literal form x'ABCD' / X'abcd'.
func hexBlob(s string) ([]byte, bool) {
	if len(s) < 3 || (s[0] != 'x' && s[0] != 'X') || s[1] != '\'' || s[len(s)-1] != '\'' {
		return nil, false
	}
	h := s[2 : len(s)-1]
	if len(h)%2 != 0 {
		return nil, false
	}
	b, err := hex.DecodeString(h)
	if err != nil {
		return nil, false
	}
	return b, true
}
