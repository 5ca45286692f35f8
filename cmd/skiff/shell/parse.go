package shell

import (
	"strings"
	"unicode"
)

// Kind tells a statement from a dot command.
type Kind int

const (
	// KindSQL is one SQL statement, without its final `;`.
	KindSQL Kind = iota
	// KindDot is a dot command (or rqlite's bare `quit`/`exit`).
	KindDot
)

// Input is one thing to run: a complete SQL statement or a dot command.
type Input struct {
	Kind Kind
	// SQL is the statement text (KindSQL).
	SQL string
	// Cmd is the dot command in lower case without its dot, Args its
	// space-separated arguments (KindDot).
	Cmd  string
	Args []string
}

// Splitter accumulates input lines until statements are complete. As in
// sqlite3, a statement ends at a `;` outside quotes, identifiers and
// comments, so it may span lines and one line may hold several; a dot
// command is one whole line typed when no statement is open.
type Splitter struct {
	buf strings.Builder
}

// Pending reports whether a statement is open (the continuation prompt).
func (s *Splitter) Pending() bool { return s.buf.Len() > 0 }

// Reset drops the open statement (Ctrl-C at the prompt).
func (s *Splitter) Reset() { s.buf.Reset() }

// Feed adds one line and returns the inputs it completes.
func (s *Splitter) Feed(line string) []Input {
	if !s.Pending() {
		t := strings.TrimSpace(line)
		if strings.HasPrefix(t, ".") {
			return []Input{parseDot(t)}
		}
		// rqlite's CLI takes these without a dot or a semicolon.
		if l := strings.ToLower(strings.TrimSuffix(t, ";")); l == "quit" || l == "exit" {
			return []Input{{Kind: KindDot, Cmd: "exit"}}
		}
	}
	s.buf.WriteString(line)
	s.buf.WriteByte('\n')
	stmts, rest := splitSQL(s.buf.String())
	s.buf.Reset()
	if !onlyBlank(rest) {
		s.buf.WriteString(rest)
	}
	var out []Input
	for _, st := range stmts {
		out = append(out, Input{Kind: KindSQL, SQL: st})
	}
	return out
}

func parseDot(line string) Input {
	f := strings.Fields(line)
	return Input{Kind: KindDot, Cmd: strings.ToLower(strings.TrimPrefix(f[0], ".")), Args: f[1:]}
}

// splitSQL returns the complete statements in text (trimmed, without the
// `;`, empty ones dropped) and the unfinished rest.
func splitSQL(text string) (stmts []string, rest string) {
	start := 0
	var words []string // the first words of the current statement
	last := ""         // its last word
	for i := 0; i < len(text); {
		c := text[i]
		switch {
		case c == '\'' || c == '"' || c == '`' || c == '[':
			end := closing(c)
			j := strings.IndexByte(text[i+1:], end)
			if j < 0 {
				return stmts, text[start:]
			}
			// A doubled quote inside a string is an escaped quote;
			// scanning on from the second one handles it.
			i += j + 2
			last = "\x00" // a quoted token is not a keyword
		case c == '-' && strings.HasPrefix(text[i:], "--"):
			j := strings.IndexByte(text[i:], '\n')
			if j < 0 {
				return stmts, text[start:]
			}
			i += j + 1
		case c == '/' && strings.HasPrefix(text[i:], "/*"):
			j := strings.Index(text[i+2:], "*/")
			if j < 0 {
				return stmts, text[start:]
			}
			i += j + 4
		case c == ';':
			// A trigger's body holds statements with their own `;`: it
			// ends only at END; (sqlite3_complete does the same).
			if isTrigger(words) && last != "END" {
				i++
				last = ";"
				continue
			}
			if st := strings.TrimSpace(text[start:i]); !onlyBlank(st) {
				stmts = append(stmts, st)
			}
			i++
			start, words, last = i, nil, ""
		case isWordByte(c):
			j := i
			for j < len(text) && isWordByte(text[j]) {
				j++
			}
			w := strings.ToUpper(text[i:j])
			if len(words) < 4 {
				words = append(words, w)
			}
			last = w
			i = j
		default:
			if !unicode.IsSpace(rune(c)) {
				last = string(c)
			}
			i++
		}
	}
	return stmts, text[start:]
}

func closing(open byte) byte {
	if open == '[' {
		return ']'
	}
	return open
}

func isWordByte(c byte) bool {
	return c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= 0x80
}

// isTrigger: CREATE [TEMP|TEMPORARY] TRIGGER.
func isTrigger(words []string) bool {
	if len(words) < 2 || words[0] != "CREATE" {
		return false
	}
	if words[1] == "TEMP" || words[1] == "TEMPORARY" {
		return len(words) > 2 && words[2] == "TRIGGER"
	}
	return words[1] == "TRIGGER"
}

// onlyBlank reports whether s is nothing but whitespace and complete
// comments, which sqlite3 does not count as a statement.
func onlyBlank(s string) bool {
	for i := 0; i < len(s); {
		switch {
		case unicode.IsSpace(rune(s[i])):
			i++
		case strings.HasPrefix(s[i:], "--"):
			j := strings.IndexByte(s[i:], '\n')
			if j < 0 {
				return true
			}
			i += j + 1
		case strings.HasPrefix(s[i:], "/*"):
			j := strings.Index(s[i+2:], "*/")
			if j < 0 {
				return false
			}
			i += j + 4
		default:
			return false
		}
	}
	return true
}
