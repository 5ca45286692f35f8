package connlimit

import (
	"io"
	"net/http"
	"time"
)

// BodyProgress bounds how slowly a client may send a request body: a read
// of the body that gets no bytes fails within d (and no sooner than d/2),
// and the connection is dropped. It is a bound on progress, not on the
// whole body, because /db/load and /boot stream bodies of any size (a
// whole-request http.Server.ReadTimeout would cut them; it would also
// cancel a long handler's context once the deadline passes). The deadline
// is cleared when the body ends, so that a handler that then runs long is
// not cut. d <= 0 returns h.
func BodyProgress(h http.Handler, d time.Duration) http.Handler {
	if d <= 0 {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body != nil && r.Body != http.NoBody {
			// net/http's own writer sets deadlines itself: no
			// ResponseController to allocate on every request.
			rd, ok := w.(readDeadliner)
			if !ok {
				rd = http.NewResponseController(w)
			}
			r.Body = &progressBody{ReadCloser: r.Body, rd: rd, d: d}
		}
		h.ServeHTTP(w, r)
	})
}

// readDeadliner is what http.ResponseController calls on net/http's
// writer.
type readDeadliner interface {
	SetReadDeadline(time.Time) error
}

type progressBody struct {
	io.ReadCloser
	rd readDeadliner
	d  time.Duration
	// armed is when the deadline was last set to armed+d: it is moved
	// only once more than d/2 has passed, not on every read, so a read
	// still has at least d/2.
	armed time.Time
	done  bool
}

func (b *progressBody) Read(p []byte) (int, error) {
	if b.done {
		return b.ReadCloser.Read(p)
	}
	if now := time.Now(); now.Sub(b.armed) > b.d/2 {
		// Errors are ignored: a connection without deadlines (a
		// test's recorder) is simply not bounded.
		_ = b.rd.SetReadDeadline(now.Add(b.d))
		b.armed = now
	}
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF {
		b.done = true
		_ = b.rd.SetReadDeadline(time.Time{})
	}
	// On any other error the deadline stays (passed, or about to): what
	// net/http reads of the body after the handler fails as fast.
	return n, err
}
