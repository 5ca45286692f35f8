package gateway

import (
	"context"
	"net/http"
	"runtime/debug"
	"time"

	"github.com/valyala/fasthttp"
	"go.uber.org/zap"

	"github.com/skiffdb/skiff/actors/replica"
	"github.com/skiffdb/skiff/gateway/rqjson"
	"github.com/skiffdb/skiff/sm/cmdpb"
)

// fastData serves the common data requests natively on fasthttp, reads
// on /db/query and writes on /db/execute, and reports whether it did. It
// takes only the common case: a request it declines is served by
// ServeHTTP, which answers everything else (errors in the request, other
// routes, strong reads, queued writes, redirects, refused credentials),
// so it declines before anything is done for the request. Its answer goes
// through the same finish as handleQuery's and handleExecute's:
// TestFastDataMatchesNetHTTP compares the two byte for byte.
func (g *Gateway) fastData(ctx *fasthttp.RequestCtx, body *heldBuf) (served bool) {
	isGet := ctx.IsGet()
	// The path as sent: ctx.Path() is normalized ("//db/query" would
	// match), where ServeHTTP routes the path as sent.
	var write bool
	switch string(ctx.URI().PathOriginal()) {
	case "/db/query":
		if !isGet && !ctx.IsPost() {
			return false
		}
	case "/db/execute":
		if !ctx.IsPost() {
			return false
		}
		write = true
	default:
		return false
	}
	start := time.Now()
	params, err := rqjson.ParseRawQuery(string(ctx.URI().QueryString()))
	if err != nil || params.Redirect || params.QualifyColumns || (write && params.Queue) {
		return false
	}
	level := replica.ParseLevel(params.Level)
	if !write && level == replica.LevelStrong {
		return false
	}
	var stmts []*cmdpb.Statement
	if isGet {
		if !params.HasQ {
			return false
		}
		stmts = rqjson.ParseQueryString(params.Q)
	} else {
		// body is nil for a body heldBody did not read whole.
		if body == nil || int64(len(body.b)) > g.cfg.MaxBodyBytes {
			return false
		}
		if stmts, err = rqjson.ParseStatements(body.b, string(ctx.Request.Header.ContentType())); err != nil {
			return false
		}
	}
	local := !write && g.servedLocally(level)
	// Admission before credentials: a declined request's credentials are
	// checked, and counted, by ServeHTTP.
	if rqjson.HasDisallowedPragma(stmts) || g.admit(local) != nil || !g.fastAuthorized(ctx, write) {
		return false
	}
	route, counter := "/db/query", &g.stats.query
	if write {
		route, counter = "/db/execute", &g.stats.execute
	}
	w := g.acquireFastWriter(ctx)
	defer g.releaseFastWriter(w)
	if m := g.cfg.Metrics; m != nil {
		defer func() { m.ObserveHTTP(route, w.status(), time.Since(start)) }()
	}
	defer g.fastRecover(w, route, &served)
	g.count(counter)
	c := dataCall{start: start, params: params, level: level, req: dataRequest(params, stmts, write)}
	// No client-gone signal on fasthttp: a request is bounded by its
	// timeout, as on net/http when the client stays.
	if write {
		g.execute(context.Background(), w, c)
	} else {
		g.readAt(context.Background(), w, c)
	}
	return true
}

// fastAuthorized checks a /db/query (or, write, /db/execute) request's
// credentials as authorized does. A refusal is not counted here: the
// request is declined, and ServeHTTP refuses and counts it.
func (g *Gateway) fastAuthorized(ctx *fasthttp.RequestCtx, write bool) bool {
	if g.cfg.Auth == nil {
		return true
	}
	r := http.Request{Header: http.Header{"Authorization": {string(ctx.Request.Header.Peek("Authorization"))}}}
	u, pw, hasBasic := r.BasicAuth()
	p := "/db/query"
	if write {
		p = "/db/execute"
	}
	if !g.cfg.Auth.Allowed(u, pw, hasBasic, routePerms(p)...) {
		return false
	}
	g.countAuth(true)
	return true
}

// fastRecover answers 500 for a panic in the native path, as ServeHTTP's
// recovery does: fasthttp itself does not recover.
func (g *Gateway) fastRecover(w *fastWriter, route string, served *bool) {
	if p := recover(); p != nil {
		*served = true
		g.log.Error("panic in handler", zap.Any("panic", p), zap.String("path", route),
			zap.ByteString("stack", debug.Stack()))
		w.ctx.Response.Reset()
		w.wrote = false
		clear(w.h)
		g.commonHeaders(w.h)
		http.Error(w, "internal error", http.StatusInternalServerError)
	}
}

// fastWriter is an http.ResponseWriter over a fasthttp response, so that
// the native path answers through the same code as ServeHTTP. The header
// is copied at WriteHeader, as net/http freezes it there.
type fastWriter struct {
	ctx   *fasthttp.RequestCtx
	h     http.Header
	code  int
	wrote bool
}

func (g *Gateway) acquireFastWriter(ctx *fasthttp.RequestCtx) *fastWriter {
	w, _ := g.fastWriters.Get().(*fastWriter)
	if w == nil {
		w = &fastWriter{h: make(http.Header, 8)}
	}
	w.ctx = ctx
	g.commonHeaders(w.h)
	return w
}

func (g *Gateway) releaseFastWriter(w *fastWriter) {
	clear(w.h)
	w.ctx, w.code, w.wrote = nil, 0, false
	g.fastWriters.Put(w)
}

func (w *fastWriter) Header() http.Header { return w.h }

func (w *fastWriter) WriteHeader(code int) {
	if w.wrote {
		return
	}
	w.wrote, w.code = true, code
	copyHeader(w.ctx, w.h, code)
}

func (w *fastWriter) Write(p []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	w.ctx.Response.AppendBody(p)
	return len(p), nil
}

// status is the answer's status code.
func (w *fastWriter) status() int {
	if !w.wrote {
		return http.StatusOK
	}
	return w.code
}
