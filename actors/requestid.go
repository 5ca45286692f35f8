package actors

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"time"
)

// requestIDKey is the context key of a proposal's request ID.
type requestIDKey struct{}

// requestIDLen is the size of a request ID made by NewRequestID.
const requestIDLen = 16

// NewRequestID returns a fresh request ID: the time in nanoseconds,
// big-endian, then 8 random bytes. Time first keeps the state machine's
// index of remembered IDs append-only, so each write dirties the same few
// B-tree pages instead of a random one (and pruning deletes from the other
// end); random IDs made every batch commit write a page per request.
func NewRequestID() []byte {
	id := make([]byte, requestIDLen)
	binary.BigEndian.PutUint64(id, uint64(time.Now().UnixNano()))
	_, _ = rand.Read(id[8:]) // never fails (crypto/rand, Go 1.24+)
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
