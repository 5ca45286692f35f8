package sqlrw

import (
	"encoding/binary"
	"encoding/hex"
	"io"
	"strconv"
	"strings"
	"time"
)

// Options selects what is rewritten (?norwrandom and ?norwtime turn parts
// off, API.md 1.2).
type Options struct {
	NoRandom, NoTime bool
	// Now is the clock read once per statement.
	Now time.Time
	// Rand supplies random bytes.
	Rand io.Reader
}

// timeFuncs are SQLite's date and time functions; each reads the clock when
// an argument is the string 'now'.
var timeFuncs = map[string]bool{
	"date": true, "time": true, "datetime": true, "julianday": true,
	"unixepoch": true, "strftime": true, "timediff": true,
}

// maxRandomBlob bounds RANDOMBLOB(N) rewritten into a literal; a larger N
// is left alone (and made deterministic by the state machine instead).
const maxRandomBlob = 1 << 16

// token is a lexical unit of SQL: its kind and its byte span.
type token struct {
	kind       kind
	start, end int
}

type kind int

const (
	tWord   kind = iota // identifier or keyword
	tString             // '...'
	tQuoted             // "..." (an identifier, or a string under DQS)
	tOther              // `...`, [...], numbers, operators
	tSpace              // white space and comments
	tOpen               // (
	tClose              // )
	tComma              // ,
)

// lex splits sql into tokens. It never fails: an unterminated literal or
// comment runs to the end.
func lex(sql string) []token {
	var toks []token
	i := 0
	for i < len(sql) {
		start := i
		c := sql[i]
		k := tOther
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f':
			for i < len(sql) && strings.IndexByte(" \t\n\r\f", sql[i]) >= 0 {
				i++
			}
			k = tSpace
		case c == '-' && i+1 < len(sql) && sql[i+1] == '-':
			if j := strings.IndexByte(sql[i:], '\n'); j >= 0 {
				i += j + 1
			} else {
				i = len(sql)
			}
			k = tSpace
		case c == '/' && i+1 < len(sql) && sql[i+1] == '*':
			if j := strings.Index(sql[i+2:], "*/"); j >= 0 {
				i += j + 4
			} else {
				i = len(sql)
			}
			k = tSpace
		case c == '\'' || c == '"' || c == '`':
			i = closeQuote(sql, i, c)
			k = map[byte]kind{'\'': tString, '"': tQuoted, '`': tOther}[c]
		case c == '[':
			if j := strings.IndexByte(sql[i:], ']'); j >= 0 {
				i += j + 1
			} else {
				i = len(sql)
			}
		case c == '(':
			i++
			k = tOpen
		case c == ')':
			i++
			k = tClose
		case c == ',':
			i++
			k = tComma
		case isWord(c):
			for i < len(sql) && isWord(sql[i]) {
				i++
			}
			k = tWord
		default:
			i++
		}
		toks = append(toks, token{kind: k, start: start, end: i})
	}
	return toks
}

// closeQuote returns the index after the literal opened at i; a doubled
// quote inside is an escaped quote.
func closeQuote(sql string, i int, q byte) int {
	for j := i + 1; j < len(sql); j++ {
		if sql[j] == q {
			if j+1 < len(sql) && sql[j+1] == q {
				j++
				continue
			}
			return j + 1
		}
	}
	return len(sql)
}

func isWord(c byte) bool {
	return c == '_' || c == '$' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= 0x80
}

// Rewrite returns sql with its non-deterministic calls replaced, and
// whether anything was replaced.
func Rewrite(sql string, o Options) (string, bool) {
	toks := lex(sql)
	var b strings.Builder
	last := 0
	changed := false
	emit := func(from, to int, s string) {
		b.WriteString(sql[last:from])
		b.WriteString(s)
		last = to
		changed = true
	}
	for i := 0; i < len(toks); i++ {
		t := toks[i]
		if t.kind != tWord {
			continue
		}
		name := strings.ToLower(sql[t.start:t.end])
		open := next(toks, i)
		if open < 0 || toks[open].kind != tOpen || (i > 0 && prevIsDot(sql, toks, i)) {
			continue
		}
		args, closeIdx := callArgs(toks, open)
		if closeIdx < 0 {
			continue
		}
		switch {
		case name == "random" && !o.NoRandom && len(args) == 0 && !afterOrderBy(sql, toks, i):
			emit(t.start, toks[closeIdx].end, strconv.FormatInt(randomInt64(o.Rand), 10))
			i = closeIdx
		case name == "randomblob" && !o.NoRandom && len(args) == 1:
			n, err := strconv.Atoi(strings.TrimSpace(sql[args[0][0]:args[0][1]]))
			if err != nil || n < 0 || n > maxRandomBlob {
				continue
			}
			emit(t.start, toks[closeIdx].end, "x'"+hex.EncodeToString(randomBytes(o.Rand, max(n, 1)))+"'")
			i = closeIdx
		case timeFuncs[name] && !o.NoTime:
			for _, a := range args {
				if isNow(sql, a) {
					emit(a[0], a[1], julianDay(o.Now))
				}
			}
		}
	}
	if !changed {
		return sql, false
	}
	b.WriteString(sql[last:])
	return b.String(), true
}

// next returns the index of the next token that is not space, or -1.
func next(toks []token, i int) int {
	for j := i + 1; j < len(toks); j++ {
		if toks[j].kind != tSpace {
			return j
		}
	}
	return -1
}

func prevIsDot(sql string, toks []token, i int) bool {
	for j := i - 1; j >= 0; j-- {
		if toks[j].kind != tSpace {
			return sql[toks[j].start:toks[j].end] == "."
		}
	}
	return false
}

// afterOrderBy reports whether the call at i directly follows ORDER BY:
// RANDOM() there shuffles rows and is left alone, as rqlite does.
func afterOrderBy(sql string, toks []token, i int) bool {
	var words []string
	for j := i - 1; j >= 0 && len(words) < 2; j-- {
		if toks[j].kind == tSpace {
			continue
		}
		if toks[j].kind != tWord {
			return false
		}
		words = append(words, strings.ToLower(sql[toks[j].start:toks[j].end]))
	}
	return len(words) == 2 && words[0] == "by" && words[1] == "order"
}

// callArgs returns the byte spans of the top-level arguments of the call
// whose '(' is at open, and the index of its ')' (-1 if unclosed).
func callArgs(toks []token, open int) ([][2]int, int) {
	depth := 0
	var args [][2]int
	argStart := -1
	for j := open; j < len(toks); j++ {
		t := toks[j]
		switch t.kind {
		case tOpen:
			depth++
			if depth == 1 {
				continue
			}
		case tClose:
			depth--
			if depth == 0 {
				if argStart >= 0 {
					args = append(args, [2]int{toks[argStart].start, toks[j-1].end})
				}
				return args, j
			}
		case tComma:
			if depth == 1 {
				if argStart >= 0 {
					args = append(args, [2]int{toks[argStart].start, toks[j-1].end})
				}
				argStart = -1
				continue
			}
		}
		if depth == 1 && argStart < 0 && t.kind != tSpace {
			argStart = j
		}
	}
	return nil, -1
}

// isNow reports whether the argument span is exactly the literal 'now'
// (or "now", which SQLite takes as a string under DQS).
func isNow(sql string, span [2]int) bool {
	s := strings.TrimSpace(sql[span[0]:span[1]])
	if len(s) != 5 {
		return false
	}
	return (s[0] == '\'' && s[4] == '\'' || s[0] == '"' && s[4] == '"') && strings.EqualFold(s[1:4], "now")
}

// julianDay formats t as SQLite's Julian day number, with microsecond
// precision as rqlite writes it.
func julianDay(t time.Time) string {
	jd := float64(t.UnixMicro())/86400e6 + 2440587.5
	return strconv.FormatFloat(jd, 'f', 6, 64)
}

func randomBytes(r io.Reader, n int) []byte {
	b := make([]byte, n)
	_, _ = io.ReadFull(r, b)
	return b
}

func randomInt64(r io.Reader) int64 {
	return int64(binary.LittleEndian.Uint64(randomBytes(r, 8)))
}

// txControlLines are the statements a dump wraps itself in (sqlite3's
// .dump and rqlite's fmt=sql). A load runs as one entry inside Skiff's own
// transaction, where client transaction control is refused, so they go.
var txControlLines = map[string]bool{
	"BEGIN;": true, "BEGIN TRANSACTION;": true, "COMMIT;": true, "COMMIT TRANSACTION;": true,
	"END TRANSACTION;": true,
}

// StripTxControl removes whole lines holding only BEGIN/COMMIT statements.
// Lines are compared whole, so a trigger body's BEGIN ... END stays.
func StripTxControl(sql string) string {
	lines := strings.Split(sql, "\n")
	out := lines[:0]
	for _, l := range lines {
		if !txControlLines[strings.ToUpper(strings.TrimSpace(l))] {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
