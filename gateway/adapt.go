package gateway

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"runtime/debug"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
	"go.uber.org/zap"
)

// fastMaxHeldAnswer is the largest answer serveAdapted holds whole before
// sending it; a larger one (a backup, a dump, a large SELECT) streams, as
// net/http's answers do once its buffer fills.
const fastMaxHeldAnswer = 64 << 10

// errAnswerStreaming: a streamed request body read after the answer began
// to stream, when fasthttp may already read the next request.
var errAnswerStreaming = errors.New("request body read after the answer began")

// serveAdapted runs the net/http handler (g.srv.Handler) on a request
// fasthttp read, as net/http's server would:
//   - The request is copied out of fasthttp's buffers, which fasthttp
//     reuses for the connection's next request: a string kept from them
//     (a metrics label, a queued statement) would change under its
//     holder. fasthttpadaptor does not copy, and holds every answer whole
//     (a 10 GB backup in memory), which is why it is not used.
//   - A body larger than fastMaxHeldBody, or chunked, is read from the
//     connection as the handler reads it (/db/load, /boot).
//   - The handler runs on its own goroutine. Its answer is held until it
//     returns, and streams once it outgrows fastMaxHeldAnswer or is
//     flushed.
//   - A handler that panics with http.ErrAbortHandler (or any panic
//     ServeHTTP does not recover) drops the connection: no answer, or a
//     cut one.
func (f *fastServer) serveAdapted(ctx *fasthttp.RequestCtx, held *heldBuf, whole bool) {
	r, err := adaptedRequest(ctx)
	if err != nil {
		ctx.SetConnectionClose()
		ctx.Error("400 Bad Request", http.StatusBadRequest)
		return
	}
	w := &adaptedWriter{h: http.Header{}, conn: ctx.Conn(), streamC: make(chan struct{})}
	body := &adaptedBody{w: w, length: r.ContentLength}
	switch {
	case whole:
		// A copy: held goes back to its pool when this returns, and a
		// streaming answer's handler runs on.
		body.r, body.held = bytes.NewReader(bytes.Clone(held.b)), true
	case held.cut:
		body.r, body.held = cutBody{}, true
	default:
		// The header's read deadline would cut a long upload;
		// BodyProgress bounds the body's progress instead.
		_ = ctx.Conn().SetReadDeadline(time.Time{})
		body.r = ctx.RequestBodyStream()
	}
	r.Body = body
	if r.ContentLength == 0 {
		r.Body = http.NoBody
	}
	endC := make(chan bool, 1)
	go func() {
		rctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		endC <- f.runHandler(w, r.WithContext(rctx))
	}()
	select {
	case ok := <-endC:
		w.answerHeld(ctx, ok, body)
	case <-w.streamC:
		if !body.consumed() {
			// fasthttp would read the rest of the body after the answer
			// with no read deadline (it was cleared for the upload): the
			// connection closes instead (lingering: lingerConn).
			ctx.SetConnectionClose()
		}
		w.answerStreaming(ctx)
	}
}

// runHandler reports false when the handler aborted.
func (f *fastServer) runHandler(w *adaptedWriter, r *http.Request) (ok bool) {
	defer func() {
		if p := recover(); p != nil {
			if p != http.ErrAbortHandler {
				f.log.Error("panic in handler", zap.Any("panic", p), zap.String("path", r.URL.Path),
					zap.ByteString("stack", debug.Stack()))
			}
			ok = false
		}
		if w.streaming.Load() {
			if ok {
				_ = w.pw.Close()
			} else {
				_ = w.pw.CloseWithError(http.ErrAbortHandler)
			}
		}
	}()
	f.g.srv.Handler.ServeHTTP(w, r)
	return true
}

// adaptedRequest is ctx's request as net/http's server presents it, its
// body aside, in memory of its own.
func adaptedRequest(ctx *fasthttp.RequestCtx) (*http.Request, error) {
	uri := string(ctx.RequestURI())
	u, err := url.ParseRequestURI(uri)
	if err != nil {
		return nil, err
	}
	r := &http.Request{Method: string(ctx.Method()), URL: u, RequestURI: uri,
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: http.Header{}, Host: string(ctx.Host()), RemoteAddr: ctx.RemoteAddr().String(),
		ContentLength: int64(ctx.Request.Header.ContentLength())}
	if !ctx.Request.Header.IsHTTP11() {
		r.Proto, r.ProtoMinor = "HTTP/1.0", 0
	}
	switch r.ContentLength {
	case -2:
		// Neither a length nor chunks: no body, for a request.
		r.ContentLength = 0
	case -1:
		r.TransferEncoding = []string{"chunked"}
	}
	for k, v := range ctx.Request.Header.All() {
		switch key := http.CanonicalHeaderKey(string(k)); key {
		case "Host", "Transfer-Encoding":
		default:
			r.Header.Add(key, string(v))
		}
	}
	return r, nil
}

// adaptedBody is a request body that notes its end, and that is not read
// from the connection once the answer streams.
type adaptedBody struct {
	r io.Reader
	w *adaptedWriter
	// held: r is a copy, not the connection.
	held bool
	// eof: the whole body was read, so the connection may be kept.
	eof bool
	// length is the declared length (-1: chunked); read counts the bytes.
	length, read int64
}

func (b *adaptedBody) Read(p []byte) (int, error) {
	if !b.held && b.w.streaming.Load() {
		return 0, errAnswerStreaming
	}
	n, err := b.r.Read(p)
	b.read += int64(n)
	if errors.Is(err, io.EOF) {
		if b.length >= 0 && b.read < b.length {
			// fasthttp ends a body cut short by its client with a
			// plain EOF; net/http with this, and so must a handler
			// that would otherwise take half an upload for all of it.
			return n, io.ErrUnexpectedEOF
		}
		b.eof = true
	}
	return n, err
}

func (b *adaptedBody) Close() error { return nil }

// consumed reports whether nothing of the body is left on the connection.
// Once the answer streams, only the handler's goroutine, which began the
// stream, reads the body, and it reads no more of it.
func (b *adaptedBody) consumed() bool {
	return b.held || b.eof || (b.length >= 0 && b.read >= b.length)
}

// cutBody is a held body fasthttp could not read whole.
type cutBody struct{}

func (cutBody) Read([]byte) (int, error) { return 0, io.ErrUnexpectedEOF }

// adaptedWriter is the handler's http.ResponseWriter. Until the answer
// streams, only the handler's goroutine touches it; serveAdapted reads it
// once the handler returns (endC) or it streams (streamC).
type adaptedWriter struct {
	h http.Header
	// sent is h as of WriteHeader: net/http sends the header then, and a
	// later change is not sent.
	sent http.Header
	code int
	buf  []byte
	// first is what was held when the answer began to stream: its type
	// is sniffed from it, as net/http does from its first write.
	first []byte
	conn  net.Conn
	// streaming: the answer goes through pw, which fasthttp reads (pr).
	streaming atomic.Bool
	streamC   chan struct{}
	pr        *io.PipeReader
	pw        *io.PipeWriter
}

func (w *adaptedWriter) Header() http.Header { return w.h }

func (w *adaptedWriter) WriteHeader(code int) {
	if w.code != 0 {
		return
	}
	w.code, w.sent = code, w.h.Clone()
}

func (w *adaptedWriter) Write(p []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	if w.streaming.Load() {
		return w.pw.Write(p)
	}
	w.buf = append(w.buf, p...)
	if len(w.buf) > fastMaxHeldAnswer {
		if err := w.stream(); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// Flush sends what the answer holds so far: it streams from then on.
func (w *adaptedWriter) Flush() {
	w.WriteHeader(http.StatusOK)
	if !w.streaming.Load() {
		_ = w.stream()
	}
}

// SetReadDeadline lets BodyProgress bound a streamed body's progress
// (connlimit's readDeadliner); once the answer streams, fasthttp owns
// the connection's deadlines.
func (w *adaptedWriter) SetReadDeadline(t time.Time) error {
	if w.streaming.Load() {
		return nil
	}
	return w.conn.SetReadDeadline(t)
}

// stream hands the answer to fasthttp (answerStreaming) and writes what
// was held.
func (w *adaptedWriter) stream() error {
	w.pr, w.pw = io.Pipe()
	w.first, w.buf = w.buf, nil
	w.streaming.Store(true)
	close(w.streamC)
	if len(w.first) == 0 {
		return nil
	}
	_, err := w.pw.Write(w.first)
	return err
}

// answerHeld sends an answer the handler finished without streaming.
func (w *adaptedWriter) answerHeld(ctx *fasthttp.RequestCtx, ok bool, body *adaptedBody) {
	if !ok {
		ctx.HijackSetNoResponse(true)
		ctx.Hijack(func(c net.Conn) { _ = c.Close() })
		return
	}
	if !body.consumed() {
		// The rest of the body is still on the connection, which closes
		// after the answer (lingering: lingerConn).
		ctx.SetConnectionClose()
	}
	w.WriteHeader(http.StatusOK)
	copyHeader(ctx, w.sent, w.code)
	if t, ok := sniffedType(w.sent, w.buf); ok {
		ctx.Response.Header.SetContentType(t)
	}
	if ctx.Request.Header.IsHead() {
		// fasthttp sends no body to a HEAD, and would send the length of
		// the one it is given; net/http sends the handler's own length
		// (http.ServeContent's), else that of a body that fit its buffer.
		if n, ok := headLength(w.sent, w.buf); ok {
			ctx.Response.Header.SetContentLength(n)
		}
		return
	}
	ctx.Response.SetBody(w.buf)
}

// netHTTPBuffered is how much of an answer net/http's server holds
// before it sends the header (bufferBeforeChunkingSize): an answer that
// ends within it gets a Content-Length.
const netHTTPBuffered = 2048

// headLength is the Content-Length net/http's server sends with an
// answer to HEAD: the handler's, or the length of what it wrote if that
// fit in net/http's buffer; none otherwise (ok false).
func headLength(h http.Header, body []byte) (int, bool) {
	if n, ok := declaredLength(h); ok {
		return n, true
	}
	return len(body), len(body) > 0 && len(body) <= netHTTPBuffered
}

// declaredLength is the Content-Length a handler set, if it set a valid one.
func declaredLength(h http.Header) (int, bool) {
	n, err := strconv.Atoi(h.Get("Content-Length"))
	return n, err == nil && n >= 0
}

// sniffedType is the Content-Type net/http's server gives an answer from
// its first bytes: none when the handler set one (a nil value is its
// opt-out), or a Content-Encoding, or wrote nothing.
func sniffedType(h http.Header, first []byte) (string, bool) {
	if _, set := h["Content-Type"]; set || len(first) == 0 || h.Get("Content-Encoding") != "" {
		return "", false
	}
	return http.DetectContentType(first), true
}

// answerStreaming sends the header now and the body as the handler
// writes it. An abort cuts the body (pw's error) and fasthttp drops the
// connection; a client that goes away closes pr, failing the handler's
// next write.
func (w *adaptedWriter) answerStreaming(ctx *fasthttp.RequestCtx) {
	if !ctx.Request.Header.IsHTTP11() {
		w.answerUntilClose(ctx)
		return
	}
	copyHeader(ctx, w.sent, w.code)
	if t, ok := sniffedType(w.sent, w.first); ok {
		ctx.Response.Header.SetContentType(t)
	}
	size := -1
	if n, ok := declaredLength(w.sent); ok {
		size = n
	}
	ctx.Response.SetBodyStream(pipeBody{w.pr}, size)
}

// answerUntilClose streams an HTTP/1.0 client's answer, which cannot be
// chunked: the body runs until the connection closes, written on the
// hijacked connection (fasthttp would chunk it).
func (w *adaptedWriter) answerUntilClose(ctx *fasthttp.RequestCtx) {
	h := w.sent.Clone()
	if t, ok := sniffedType(h, w.first); ok {
		h.Set("Content-Type", t)
	}
	head := rawHead(ctx, w.code, h)
	pr := w.pr
	ctx.HijackSetNoResponse(true)
	ctx.Hijack(func(c net.Conn) {
		bw := bufio.NewWriterSize(c, streamChunk)
		_, err := bw.Write(head)
		if err == nil && ctx.Request.Header.IsHead() {
			_ = pr.Close()
		} else if err == nil {
			_, err = io.CopyBuffer(bw, pr, make([]byte, streamChunk))
		}
		if err == nil {
			err = bw.Flush()
		}
		// On a write error the handler's next write fails.
		_ = pr.CloseWithError(err)
		_ = c.Close()
	})
}

// rawHead is an answer's status line and header, ending the connection
// after it, for an answer written on a hijacked connection.
func rawHead(ctx *fasthttp.RequestCtx, code int, h http.Header) []byte {
	h.Set("Date", time.Now().UTC().Format(http.TimeFormat))
	h.Set("Connection", "close")
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %d %s\r\n", ctx.Request.Header.Protocol(), code, http.StatusText(code))
	_ = h.Write(&b)
	b.WriteString("\r\n")
	return b.Bytes()
}

// streamChunk is the buffer a streamed answer is copied through.
const streamChunk = 256 << 10

// pipeBody is a streamed answer as fasthttp reads it. Its WriteTo makes
// each of the handler's writes one chunk, where fasthttp's own copy cuts
// 4 KiB chunks and flushes each (a syscall per 4 KiB of a backup).
type pipeBody struct{ *io.PipeReader }

// SupportsBodyWriteTo opts in to fasthttp's use of WriteTo
// (fasthttp.BodyWriterTo).
func (pipeBody) SupportsBodyWriteTo() bool { return true }

func (b pipeBody) WriteTo(dst io.Writer) (int64, error) {
	return io.CopyBuffer(dst, b.PipeReader, make([]byte, streamChunk))
}

// copyHeader sets ctx's status and the header a handler wrote.
func copyHeader(ctx *fasthttp.RequestCtx, h http.Header, code int) {
	ctx.SetStatusCode(code)
	for k, vv := range h {
		if k == "Content-Length" {
			// fasthttp frames the body itself.
			continue
		}
		for _, v := range vv {
			ctx.Response.Header.Add(k, v)
		}
	}
}
