package connlimit

import (
	"io"
	"net/http"
	"time"
)

// BodyProgress bounds how slowly a client may send a request body: every
// read of the body must get bytes within d, or the read fails and the
// connection is dropped. It is a bound on progress, not on the whole body,
// because /db/load and /boot stream bodies of any size (a whole-request
// http.Server.ReadTimeout would cut them; it would also cancel a long
// handler's context once the deadline passes). The deadline is cleared
// when the body ends, so that a handler that then runs long is not cut. d <= 0
// returns h.
func BodyProgress(h http.Handler, d time.Duration) http.Handler {
	if d <= 0 {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body != nil && r.Body != http.NoBody {
			r.Body = &progressBody{ReadCloser: r.Body, rc: http.NewResponseController(w), d: d}
		}
		h.ServeHTTP(w, r)
	})
}

type progressBody struct {
	io.ReadCloser
	rc   *http.ResponseController
	d    time.Duration
	done bool
}

func (b *progressBody) Read(p []byte) (int, error) {
	if b.done {
		return b.ReadCloser.Read(p)
	}
	// Errors are ignored: a connection without deadlines (a test's
	// recorder) is simply not bounded.
	_ = b.rc.SetReadDeadline(time.Now().Add(b.d))
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF {
		b.done = true
		_ = b.rc.SetReadDeadline(time.Time{})
	}
	// On any other error the deadline stays (passed, or about to): what
	// net/http reads of the body after the handler fails as fast.
	return n, err
}
