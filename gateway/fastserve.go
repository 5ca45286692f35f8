package gateway

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"
	"go.uber.org/zap"

	"github.com/skiffdb/skiff/gateway/rqjson"
)

// fastServer serves plain HTTP with valyala/fasthttp (Config.Server
// ServerFast). Why: side by side with net/http, net/http's machinery
// around a handler (the background read that watches for a client going
// away, the request context, the header maps) was about a third of a
// point read's CPU (README, "HTTP server"). The data routes' common case
// is served natively (fastquery.go); every other request reaches the
// same net/http handler as on ServerNet, so each behaviour is written
// once:
//   - a request whose body fasthttp holds whole (none, or at most
//     fastMaxHeldBody bytes) goes through fasthttpadaptor, which streams
//     a handler's flushed answer (/db/backup) as net/http does;
//   - a larger or chunked body (/db/load, /boot) is streamed to the
//     handler (serveStreamed): fasthttpadaptor would read it all into
//     memory first.
type fastServer struct {
	g   *Gateway
	log *zap.Logger
	srv *fasthttp.Server
	// held serves requests whose body fasthttp has read whole.
	held fasthttp.RequestHandler

	// conns are the open connections, closed by force when the graceful
	// shutdown times out (fasthttp has no Close).
	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

const (
	// fastMaxHeldBody is the largest request body fasthttp reads before
	// calling the handler; a larger one is streamed to it. It matches
	// readBody's presizeLimit: what a data request reads in one piece.
	fastMaxHeldBody = presizeLimit
	// fastMaxHeaderBytes caps fasthttp's per-connection read buffer,
	// which bounds the request line and headers: Config.MaxHeaderBytes'
	// default (1 MiB, net/http's) would be a buffer of that size per
	// connection. The Raft port's HTTP server has the same bound.
	fastMaxHeaderBytes = 64 << 10
)

func newFastServer(g *Gateway) *fastServer {
	f := &fastServer{g: g, log: g.log.Named("http"), conns: map[net.Conn]struct{}{}}
	f.held = fasthttpadaptor.NewFastHTTPHandler(g.srv.Handler)
	f.srv = &fasthttp.Server{
		Handler:        f.serve,
		Logger:         zapPrintf{f.log.Sugar()},
		ReadBufferSize: min(g.cfg.MaxHeaderBytes, fastMaxHeaderBytes),
		// fasthttp's read timeout covers the headers and the held part
		// of a body; a streamed body is bounded by BodyProgress instead
		// (serveStreamed clears this deadline).
		ReadTimeout:                  g.cfg.ReadHeaderTimeout,
		IdleTimeout:                  g.cfg.IdleTimeout,
		MaxRequestBodySize:           fastMaxHeldBody,
		StreamRequestBody:            true,
		DisablePreParseMultipartForm: true,
		// net/http sends neither a Server header nor a Content-Type it
		// was not given.
		NoDefaultServerHeader: true,
		NoDefaultContentType:  true,
		CloseOnShutdown:       true,
		ConnState:             f.track,
		ErrorHandler:          f.requestError,
	}
	return f
}

// requestError answers a request fasthttp could not read, as net/http
// and the handlers do: a header too large is 431, a body shorter than its
// declared length is invalid JSON (readBody's answer), a timeout is 408,
// anything else 400. fasthttp closes the connection after it.
func (f *fastServer) requestError(ctx *fasthttp.RequestCtx, err error) {
	var small *fasthttp.ErrSmallBuffer
	var netErr net.Error
	switch {
	case errors.As(err, &small):
		ctx.Error("431 Request Header Fields Too Large", http.StatusRequestHeaderFieldsTooLarge)
	case errors.As(err, &netErr) && netErr.Timeout():
		ctx.Error("408 Request Timeout", http.StatusRequestTimeout)
	case errors.Is(err, io.ErrUnexpectedEOF) && len(ctx.Request.Header.RequestURI()) > 0:
		status, _, msg := classify(rqjson.ErrInvalidJSON)
		ctx.Error(msg+"\n", status)
	default:
		ctx.Error("400 Bad Request", http.StatusBadRequest)
	}
	ctx.Response.Header.SetContentType("text/plain; charset=utf-8")
}

// zapPrintf is fasthttp's Logger over zap.
type zapPrintf struct{ s *zap.SugaredLogger }

func (z zapPrintf) Printf(format string, args ...any) { z.s.Infof(format, args...) }

func (f *fastServer) track(c net.Conn, s fasthttp.ConnState) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch s {
	case fasthttp.StateNew:
		f.conns[c] = struct{}{}
	case fasthttp.StateClosed, fasthttp.StateHijacked:
		delete(f.conns, c)
	}
}

func (f *fastServer) closeConns() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for c := range f.conns {
		_ = c.Close()
	}
}

// run serves ln until ctx ends, then lets in-flight requests finish
// (bounded by ShutdownTimeout), as Gateway.Run does with net/http.
func (f *fastServer) run(ctx context.Context, ln net.Listener) error {
	errC := make(chan error, 1)
	go func() { errC <- f.srv.Serve(ln) }()
	select {
	case err := <-errC:
		return fmt.Errorf("http server: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), f.g.cfg.ShutdownTimeout)
	defer cancel()
	if err := f.srv.ShutdownWithContext(sctx); err != nil {
		f.log.Warn("http shutdown timed out; closing connections", zap.Error(err))
		f.closeConns()
	}
	if err := <-errC; err != nil {
		return fmt.Errorf("http server: %w", err)
	}
	return nil
}

func (f *fastServer) serve(ctx *fasthttp.RequestCtx) {
	if f.g.fastQuery(ctx) {
		return
	}
	if n := ctx.Request.Header.ContentLength(); n == -1 || n > fastMaxHeldBody {
		f.serveStreamed(ctx)
		return
	}
	f.held(ctx)
}

// serveStreamed runs the net/http handler on a request whose body is
// still on the connection, reading it as the handler does. The answer is
// buffered: the routes that take large bodies answer with a short
// document.
func (f *fastServer) serveStreamed(ctx *fasthttp.RequestCtx) {
	r, err := streamedRequest(ctx)
	if err != nil {
		ctx.SetConnectionClose()
		ctx.Error("Bad Request", http.StatusBadRequest)
		return
	}
	// The header's read deadline would cut a long upload; BodyProgress
	// bounds the body's progress instead.
	_ = ctx.Conn().SetReadDeadline(time.Time{})
	body := &streamBody{r: ctx.RequestBodyStream()}
	r.Body = body
	rctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := &heldWriter{h: http.Header{}, conn: ctx.Conn()}
	if !f.serveRecovered(w, r.WithContext(rctx)) {
		// As net/http does on ErrAbortHandler: no answer, and the
		// connection is dropped.
		ctx.HijackSetNoResponse(true)
		ctx.Hijack(func(c net.Conn) { _ = c.Close() })
		return
	}
	if !body.eof {
		// The rest of the body is still on the connection.
		ctx.SetConnectionClose()
	}
	w.copyTo(ctx)
}

// serveRecovered reports false when the handler aborted (a panic that
// ServeHTTP's own recovery passes on).
func (f *fastServer) serveRecovered(w http.ResponseWriter, r *http.Request) (ok bool) {
	defer func() {
		if p := recover(); p != nil {
			if p != http.ErrAbortHandler {
				f.log.Error("panic in streamed handler", zap.Any("panic", p))
			}
			ok = false
		}
	}()
	f.g.srv.Handler.ServeHTTP(w, r)
	return true
}

// streamedRequest is ctx's request as net/http's server would present
// it, without its body.
func streamedRequest(ctx *fasthttp.RequestCtx) (*http.Request, error) {
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
	if r.ContentLength < 0 {
		r.ContentLength = -1
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

// streamBody is a streamed request body that notes its end.
type streamBody struct {
	r interface{ Read([]byte) (int, error) }
	// eof: the whole body was read, so the connection may be kept.
	eof bool
}

func (b *streamBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err != nil && errors.Is(err, io.EOF) {
		b.eof = true
	}
	return n, err
}

func (b *streamBody) Close() error { return nil }

// heldWriter buffers a handler's answer. It lets BodyProgress move the
// connection's read deadline (connlimit's readDeadliner).
type heldWriter struct {
	h    http.Header
	code int
	body bytes.Buffer
	conn net.Conn
}

func (w *heldWriter) Header() http.Header { return w.h }

func (w *heldWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
}

func (w *heldWriter) Write(p []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	return w.body.Write(p)
}

func (w *heldWriter) SetReadDeadline(t time.Time) error { return w.conn.SetReadDeadline(t) }

// copyTo writes the held answer as ctx's response.
func (w *heldWriter) copyTo(ctx *fasthttp.RequestCtx) {
	w.WriteHeader(http.StatusOK)
	copyHeader(ctx, w.h, w.code)
	if w.body.Len() > 0 && w.h.Get("Content-Type") == "" {
		// net/http's sniffing, for an answer without a type.
		ctx.Response.Header.SetContentType(http.DetectContentType(w.body.Bytes()))
	}
	ctx.Response.SetBody(w.body.Bytes())
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
