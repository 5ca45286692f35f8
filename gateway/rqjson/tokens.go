package rqjson

import (
	"encoding/json"
)

// tokens reads JSON that json.Valid has accepted, one token at a time, as
// json.Decoder.Token with UseNumber does: the same json.Token values (Delim,
// string, json.Number, bool, nil), commas and colons skipped. Statements
// arrive on every request, and the Decoder's streaming machinery was most
// of their parsing cost (it allocates an error each time a number ends).
//
// Strings with escapes or non-ASCII bytes are decoded by encoding/json
// itself, so that invalid UTF-8 and lone surrogates become what they
// always did (U+FFFD); only plain ASCII strings are copied here.
type tokens struct {
	b []byte
	i int
}

func isJSONSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// skip moves past whitespace and the separators Token does not return.
func (t *tokens) skip() {
	for t.i < len(t.b) && (isJSONSpace(t.b[t.i]) || t.b[t.i] == ',' || t.b[t.i] == ':') {
		t.i++
	}
}

// More reports whether the current array or object has another element.
func (t *tokens) More() bool {
	t.skip()
	return t.i < len(t.b) && t.b[t.i] != ']' && t.b[t.i] != '}'
}

// Token returns the next token. Input json.Valid refused is out of its
// contract; it then returns ErrInvalidJSON rather than guess.
func (t *tokens) Token() (json.Token, error) {
	t.skip()
	if t.i >= len(t.b) {
		return nil, ErrInvalidJSON
	}
	switch c := t.b[t.i]; c {
	case '[', ']', '{', '}':
		t.i++
		return json.Delim(c), nil
	case '"':
		return t.str()
	case 't':
		return t.literal("true", true)
	case 'f':
		return t.literal("false", false)
	case 'n':
		return t.literal("null", nil)
	default:
		start := t.i
		for t.i < len(t.b) && isNumberByte(t.b[t.i]) {
			t.i++
		}
		if t.i == start {
			return nil, ErrInvalidJSON
		}
		return json.Number(t.b[start:t.i]), nil
	}
}

func isNumberByte(c byte) bool {
	return c >= '0' && c <= '9' || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E'
}

func (t *tokens) literal(word string, v json.Token) (json.Token, error) {
	if len(t.b)-t.i < len(word) || string(t.b[t.i:t.i+len(word)]) != word {
		return nil, ErrInvalidJSON
	}
	t.i += len(word)
	return v, nil
}

// str reads the string starting at t.i (its opening quote).
func (t *tokens) str() (json.Token, error) {
	start := t.i
	plain := true
	for t.i++; t.i < len(t.b); t.i++ {
		switch c := t.b[t.i]; {
		case c == '\\':
			plain = false
			t.i++ // the escaped byte cannot end the string
		case c == '"':
			t.i++
			if plain {
				return string(t.b[start+1 : t.i-1]), nil
			}
			var s string
			if err := json.Unmarshal(t.b[start:t.i], &s); err != nil {
				return nil, ErrInvalidJSON
			}
			return s, nil
		case c < 0x20 || c >= 0x80:
			plain = false
		}
	}
	return nil, ErrInvalidJSON
}
