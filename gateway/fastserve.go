package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime/debug"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
	"go.uber.org/zap"

	"github.com/skiffdb/skiff/gateway/rqjson"
)

// fastServer serves plain HTTP with valyala/fasthttp (Config.Server
// ServerFast). Why: side by side with net/http, net/http's machinery
// around a handler (the background read that watches for a client going
// away, the request context, the header maps) was about a third of a
// point read's CPU (README, "HTTP server"). The data routes' common case
// is served natively (fastquery.go); every other request reaches the
// same net/http handler as on ServerNet through serveAdapted (adapt.go),
// so each behaviour is written once.
type fastServer struct {
	g   *Gateway
	log *zap.Logger
	srv *fasthttp.Server

	// conns are the open connections, closed by force when the graceful
	// shutdown times out (fasthttp has no Close).
	mu    sync.Mutex
	conns map[net.Conn]struct{}
	// bodies holds heldBody's buffers.
	bodies sync.Pool
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
	f.srv = &fasthttp.Server{
		Handler:        f.serve,
		Logger:         zapPrintf{f.log.Sugar()},
		ReadBufferSize: g.maxHeaderBytes(),
		// fasthttp's read timeout covers the headers and the held part
		// of a body; a streamed body is bounded by BodyProgress instead
		// (serveAdapted clears this deadline).
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
		// A malformed request is not echoed into the log (it may hold
		// credentials).
		SecureErrorLogMessage: true,
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
	h := &ctx.Response.Header
	h.SetContentType("text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Rqlite-Version", f.g.version[0])
	h.Set("X-Skiff-Version", f.g.version[0])
}

// zapPrintf is fasthttp's Logger over zap.
type zapPrintf struct{ s *zap.SugaredLogger }

// Printf logs at debug: fasthttp logs what net/http does not (each
// malformed request, each aborted answer), and a client could flood it.
func (z zapPrintf) Printf(format string, args ...any) { z.s.Debugf(format, args...) }

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
	go func() { errC <- f.srv.Serve(lingerListener{ln}) }()
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
	// fasthttp's Shutdown returns at once if Serve has not registered
	// the listener yet, and Serve would then serve on: a closed listener
	// ends it either way.
	_ = ln.Close()
	if err := <-errC; err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("http server: %w", err)
	}
	return nil
}

func (f *fastServer) serve(ctx *fasthttp.RequestCtx) {
	defer func() {
		// fasthttp does not recover a handler's panic; fastData and
		// serveAdapted recover their own, this is for the rest.
		if p := recover(); p != nil {
			f.log.Error("panic in handler", zap.Any("panic", p), zap.ByteString("stack", debug.Stack()))
			ctx.Response.Reset()
			ctx.SetConnectionClose()
			ctx.Error("internal error\n", http.StatusInternalServerError)
		}
	}()
	body, ok := f.heldBody(ctx)
	defer f.bodies.Put(body)
	held := body
	if !ok {
		held = nil
	}
	if !f.g.fastData(ctx, held) {
		f.serveAdapted(ctx, body, ok)
	}
}

// heldBody reads a body of at most fastMaxHeldBody bytes whole, into a
// pooled buffer (a *heldBuf; its bytes are not kept past the request).
// It reports false for a body it did not read: a larger or chunked one,
// left on the connection for serveAdapted to stream, or one cut short
// (its reader then answers io.ErrUnexpectedEOF). fasthttp's own
// PostBody would log a warning per request and give a read error's text
// as the body.
func (f *fastServer) heldBody(ctx *fasthttp.RequestCtx) (*heldBuf, bool) {
	b, _ := f.bodies.Get().(*heldBuf)
	if b == nil {
		b = &heldBuf{}
	}
	b.b, b.cut = b.b[:0], false
	n := ctx.Request.Header.ContentLength()
	switch {
	case n == -2 || n == 0:
		// -2: no length and no chunks, which for a request is no body.
		return b, true
	case n < 0 || n > fastMaxHeldBody:
		return b, false
	}
	if cap(b.b) < n {
		b.b = make([]byte, n)
	}
	b.b = b.b[:n]
	if _, err := io.ReadFull(ctx.RequestBodyStream(), b.b); err != nil {
		b.b, b.cut = b.b[:0], true
		return b, false
	}
	return b, true
}

// heldBuf is a request body read whole, or cut short.
type heldBuf struct {
	b   []byte
	cut bool
}

// lingerListener's connections linger at close (lingerConn).
type lingerListener struct{ net.Listener }

func (l lingerListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &lingerConn{Conn: c}, nil
}

// lingerDelay is how long a closing connection reads what its client
// still sends (net/http's rstAvoidanceDelay).
const lingerDelay = 500 * time.Millisecond

// lingerConn closes as net/http's server does (closeWriteAndWait): FIN
// first, then what the client still sends is read and dropped for
// lingerDelay, in the background, before the close. fasthttp closes at
// once, and a client still sending (a refused upload, headers past the
// bound) then gets a reset that destroys the answer it was sent.
type lingerConn struct {
	net.Conn
	once sync.Once
}

func (c *lingerConn) Close() error {
	c.once.Do(func() {
		cw, ok := c.Conn.(interface{ CloseWrite() error })
		if !ok || cw.CloseWrite() != nil || c.Conn.SetReadDeadline(time.Now().Add(lingerDelay)) != nil {
			_ = c.Conn.Close()
			return
		}
		go func() {
			_, _ = io.Copy(io.Discard, c.Conn)
			_ = c.Conn.Close()
		}()
	})
	return nil
}

// CloseWrite half-closes, as the connection beneath does.
func (c *lingerConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
