package rqjson

import "strings"

// HasReturning reports whether sql uses the RETURNING keyword, in which case
// a write must produce a query-shaped result (API.md 1.4 "RETURNING").
//
// It is a lexical check, not a parse: RETURNING must be a whole word
// (case-insensitive) outside string literals, quoted identifiers ("...",
// `...`, [...]) and comments (-- and /* */), and not a bound parameter name
// (:returning) or a qualified column (t.returning).
func HasReturning(sql string) bool {
	const kw = "returning"
	prev := byte(0) // last significant byte before the current word
	for i := 0; i < len(sql); {
		c := sql[i]
		switch {
		case c == '\'' || c == '"' || c == '`':
			// A doubled quote inside a literal ends it and opens another,
			// which this loop handles the same as the original.
			end := strings.IndexByte(sql[i+1:], c)
			if end < 0 {
				return false
			}
			i += end + 2
			prev = c
		case c == '[':
			end := strings.IndexByte(sql[i+1:], ']')
			if end < 0 {
				return false
			}
			i += end + 2
			prev = ']'
		case c == '-' && i+1 < len(sql) && sql[i+1] == '-':
			end := strings.IndexByte(sql[i:], '\n')
			if end < 0 {
				return false
			}
			i += end + 1
		case c == '/' && i+1 < len(sql) && sql[i+1] == '*':
			end := strings.Index(sql[i+2:], "*/")
			if end < 0 {
				return false
			}
			i += end + 4
		case isWordByte(c):
			start := i
			for i < len(sql) && isWordByte(sql[i]) {
				i++
			}
			if i-start == len(kw) && strings.EqualFold(sql[start:i], kw) &&
				prev != ':' && prev != '@' && prev != '$' && prev != '#' && prev != '.' {
				return true
			}
			prev = 'a'
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v':
			i++
		default:
			prev = c
			i++
		}
	}
	return false
}

// isWordByte matches SQLite identifier bytes; bytes >= 0x80 are part of
// identifiers in SQLite, so "éreturning" is one word.
func isWordByte(c byte) bool {
	return c == '_' || c == '$' || c >= 0x80 ||
		(c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
}
