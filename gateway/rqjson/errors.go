package rqjson

import "errors"

// Body errors carry rqlite's exact texts (API.md 1.3): the gateway writes
// err.Error() as the 400 body, and clients match on these strings.
var (
	// ErrInvalidJSON is returned for a body that is not valid JSON.
	ErrInvalidJSON = errors.New("invalid JSON body")
	// ErrInvalidRequest is returned for valid JSON that is not an array of
	// statements.
	ErrInvalidRequest = errors.New("invalid request")
	// ErrNoStatements is returned when the body holds no non-empty statement.
	ErrNoStatements = errors.New("no statements")
	// ErrUnsupportedType is returned (wrapped with detail) for a parameter
	// value that has no SQL equivalent, such as a nested object.
	ErrUnsupportedType = errors.New("unsupported type")
	// ErrBadParam matches (via errors.Is) every error returned by
	// ParseParams; the error's own text is rqlite's exact message.
	ErrBadParam = errors.New("bad query parameter")
)

// ParamError is a query-parameter validation failure. Its Error text is
// exactly rqlite's (API.md 1.2) so it can be written as the 400 body as is.
type ParamError struct {
	msg string
}

func (e *ParamError) Error() string { return e.msg }

// Is makes errors.Is(err, ErrBadParam) true without putting the sentinel's
// text into the message.
func (e *ParamError) Is(target error) bool { return target == ErrBadParam }
