package actors

import (
	"context"
	"crypto/rand"
)

// requestIDKey is the context key of a proposal's request ID.
type requestIDKey struct{}

// requestIDLen is the size of a request ID made by NewRequestID.
const requestIDLen = 16

// NewRequestID returns a fresh random request ID.
func NewRequestID() []byte {
	id := make([]byte, requestIDLen)
	_, _ = rand.Read(id) // never fails (crypto/rand, Go 1.24+)
	return id
}

// WithRequestID returns ctx carrying id as the request ID of the write it
// bounds. A caller that retries a write after an uncertain failure (a
// timeout: the proposal may have committed) passes the same id on every
// attempt; the state machine applies a request ID once and answers a
// retry with the first result. The replica uses the ID it finds here
// instead of making a new one.
func WithRequestID(ctx context.Context, id []byte) context.Context {
	return context.WithValue(ctx, requestIDKey{}, append([]byte(nil), id...))
}

// RequestID returns the request ID WithRequestID put in ctx, if any.
func RequestID(ctx context.Context) ([]byte, bool) {
	id, ok := ctx.Value(requestIDKey{}).([]byte)
	if !ok || len(id) == 0 {
		return nil, false
	}
	return append([]byte(nil), id...), true
}
