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

// fastQuery serves a read on /db/query natively on fasthttp and reports
// whether it did. It takes only the common case: a request it declines is
// served by ServeHTTP, which answers everything else (errors in the
// request, other routes, strong reads, redirects, refused credentials), so
// it declines before anything is done for the request. Its answer goes
// through the same finish as handleQuery's: TestFastQueryMatchesNetHTTP
// compares the two byte for byte.
func (g *Gateway) fastQuery(ctx *fasthttp.RequestCtx, body *heldBuf) (served bool) {
	isGet := ctx.IsGet()
	// The path as sent: ctx.Path() is normalized ("//db/query" would
	// match), where ServeHTTP routes the path as sent.
	if (!isGet && !ctx.IsPost()) || string(ctx.URI().PathOriginal()) != "/db/query" {
		return false
	}
	start := time.Now()
	params, err := rqjson.ParseRawQuery(string(ctx.URI().QueryString()))
	if err != nil || params.Redirect || params.QualifyColumns {
		return false
	}
	level := replica.ParseLevel(params.Level)
	if level == replica.LevelStrong {
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
	local := g.servedLocally(level)
	// Admission before credentials: a declined request's credentials are
	// checked, and counted, by ServeHTTP.
	if rqjson.HasDisallowedPragma(stmts) || g.admit(local) != nil || !g.fastAuthorized(ctx) {
		return false
	}
	for _, s := range stmts {
		s.ReturnsRows = true
	}
	w := g.acquireFastWriter(ctx)
	defer g.releaseFastWriter(w)
	if m := g.cfg.Metrics; m != nil {
		defer func() { m.ObserveHTTP("/db/query", w.status(), time.Since(start)) }()
	}
	defer g.fastRecover(w, &served)
	g.count(&g.stats.query)
	c := dataCall{start: start, params: params, level: level,
		req: &cmdpb.Request{Statements: stmts, Transaction: params.Transaction, Timings: params.Timings}}
	opts := c.readOptions()
	opts.Deadline = start.Add(g.timeout(params.Timeout))
	// No client-gone signal on fasthttp: the read is bounded by its
	// deadline, as on net/http when the client stays.
	resp, err := g.data.Query(context.Background(), c.req, opts)
	g.finish(w, c, resp, err, false)
	return true
}

// fastAuthorized checks a /db/query request's credentials as authorized
// does. A refusal is not counted here: the request is declined, and
// ServeHTTP refuses and counts it.
func (g *Gateway) fastAuthorized(ctx *fasthttp.RequestCtx) bool {
	if g.cfg.Auth == nil {
		return true
	}
	r := http.Request{Header: http.Header{"Authorization": {string(ctx.Request.Header.Peek("Authorization"))}}}
	u, pw, hasBasic := r.BasicAuth()
	if !g.cfg.Auth.Allowed(u, pw, hasBasic, routePerms("/db/query")...) {
		return false
	}
	g.countAuth(true)
	return true
}

// fastRecover answers 500 for a panic in the native path, as ServeHTTP's
// recovery does: fasthttp itself does not recover.
func (g *Gateway) fastRecover(w *fastWriter, served *bool) {
	if p := recover(); p != nil {
		*served = true
		g.log.Error("panic in handler", zap.Any("panic", p), zap.String("path", "/db/query"),
			zap.ByteString("stack", debug.Stack()))
		w.ctx.Response.Reset()
		w.wrote = false
		clear(w.h)
		w.h["X-Rqlite-Version"] = g.version
		w.h["X-Skiff-Version"] = g.version
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
	// The headers ServeHTTP sets on every answer.
	w.h["X-Rqlite-Version"] = g.version
	w.h["X-Skiff-Version"] = g.version
	if g.cfg.AllowOrigin != "" {
		w.h.Set("Access-Control-Allow-Origin", g.cfg.AllowOrigin)
	}
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
