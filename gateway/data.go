package gateway

import (
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net/http"
	"time"

	"github.com/skiffdb/skiff/actors/lifecycle"
	"github.com/skiffdb/skiff/actors/replica"
	"github.com/skiffdb/skiff/gateway/rqjson"
	"github.com/skiffdb/skiff/gateway/sqlrw"
	"github.com/skiffdb/skiff/sm"
	"github.com/skiffdb/skiff/sm/cmdpb"
)

// presizeLimit is the largest declared body length allocated up front: a
// client's Content-Length alone must not make the node allocate much.
const presizeLimit = 64 << 10

// readBody reads a size-limited body.
func (g *Gateway) readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	if n := r.ContentLength; n >= 0 && n <= min(g.cfg.MaxBodyBytes, presizeLimit) {
		// A small declared length is read into a buffer of that size (and
		// one byte more, to see the body's end as io.ReadAll does), not
		// grown from 512 bytes.
		b := make([]byte, n+1)
		k, err := io.ReadFull(r.Body, b)
		if k != int(n) || !(errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF)) {
			return nil, rqjson.ErrInvalidJSON
		}
		return b[:k], nil
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, g.cfg.MaxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, ErrBodyTooLarge
		}
		return nil, rqjson.ErrInvalidJSON
	}
	return b, nil
}

// admit refuses a data request the node's phase cannot serve. Reads at
// level none are served while degraded (DESIGN.md).
func (g *Gateway) admit(localRead bool) error {
	st := g.state()
	if st.Phase == lifecycle.Ready || (localRead && st.Phase == lifecycle.Degraded) {
		return nil
	}
	return phaseErr(st.Phase)
}

// parse reads parameters and, for POST, the body's statements.
func (g *Gateway) parse(w http.ResponseWriter, r *http.Request, allowQ bool) (rqjson.Params, []*cmdpb.Statement, error) {
	params, err := rqjson.ParseRawQuery(r.URL.RawQuery)
	if err != nil {
		return params, nil, err
	}
	if r.Method == http.MethodGet {
		if !allowQ || !params.HasQ {
			return params, nil, rqjson.ErrNoStatements
		}
		return params, rqjson.ParseQueryString(params.Q), nil
	}
	body, err := g.readBody(w, r)
	if err != nil {
		return params, nil, err
	}
	stmts, err := rqjson.ParseStatements(body, r.Header.Get("Content-Type"))
	return params, stmts, err
}

func options(p rqjson.Params, writes bool) rqjson.Options {
	return rqjson.Options{Pretty: p.Pretty, Timings: p.Timings, Associative: p.Associative, BlobArray: p.BlobArray, WriteRowsNull: writes}
}

// respond encodes a response.
func (g *Gateway) respond(w http.ResponseWriter, resp *cmdpb.Response, p rqjson.Params, start time.Time, writes bool) {
	env := rqjson.Envelope{Error: resp.GetError(), Time: time.Since(start).Seconds()}
	if p.RaftIndex {
		env.RaftIndex = resp.GetRaftIndex()
	}
	g.writeAnswer(w, func(b []byte) []byte { return rqjson.AppendResponse(b, resp.GetResults(), env, options(p, writes)) })
}

func requestError(w http.ResponseWriter, msg string, p rqjson.Params) {
	writeJSON(w, http.StatusOK, rqjson.AppendError(nil, msg, p.Pretty))
}

// dataCall is a parsed, admitted data request.
type dataCall struct {
	start  time.Time
	params rqjson.Params
	level  replica.Level
	req    *cmdpb.Request
}

// endpoint says how a data route parses and admits its requests.
type endpoint struct {
	methods []string
	// allowQ: statements may come from GET ?q= (API.md 1.2).
	allowQ bool
	// write: the route writes (execute): level does not apply, and
	// RETURNING alone makes a statement answer with rows.
	write bool
}

// queueWaitTimeout is ?wait's default deadline (API.md 1.2).
const queueWaitTimeout = 30 * time.Second

// prepare parses and admits a data request, answering the client itself
// (error or request-level error) when it returns false.
func (g *Gateway) prepare(w http.ResponseWriter, r *http.Request, ep endpoint) (dataCall, bool) {
	c := dataCall{start: time.Now()}
	if !methods(w, r, ep.methods...) {
		return c, false
	}
	params, stmts, err := g.parse(w, r, ep.allowQ)
	if err != nil {
		g.writeError(w, err)
		return c, false
	}
	c.params = params
	if rqjson.HasDisallowedPragma(stmts) {
		requestError(w, rqjson.ErrTextDisallowedPragma, params)
		return c, false
	}
	c.level = replica.ParseLevel(params.Level)
	// A queued write with noleader is accepted whatever the node's state
	// (API.md 1.2); it is written when the node can.
	queuedNoLeader := ep.write && params.Queue && params.NoLeader
	local := !ep.write && g.servedLocally(c.level)
	if err := g.admit(local); err != nil && !queuedNoLeader {
		g.writeError(w, err)
		return c, false
	}
	// ?redirect: what the leader must serve is sent there (API.md 1.7).
	if params.Redirect && !local && g.redirect(w, r) {
		return c, false
	}
	if params.QualifyColumns && !sm.QualifyColumnsSupported {
		g.writeError(w, ErrQualifyUnsupported)
		return c, false
	}
	c.req = dataRequest(params, stmts, ep.write)
	return c, true
}

// dataRequest is the request a data route's statements make.
func dataRequest(params rqjson.Params, stmts []*cmdpb.Statement, write bool) *cmdpb.Request {
	for _, s := range stmts {
		// A read route asks rows of every statement; on the log path a
		// statement asking rows runs as a query when it has result columns
		// and as a write otherwise. RETURNING makes a write answer with rows
		// (API.md 1.4).
		s.ReturnsRows = !write || rqjson.HasReturning(s.GetSql())
	}
	return &cmdpb.Request{Statements: stmts, Transaction: params.Transaction, Timings: params.Timings,
		QualifyColumns: params.QualifyColumns}
}

// execute runs a write through the log and answers it; parent is the
// request's context (net/http's, or none on fasthttp's native path).
func (g *Gateway) execute(parent context.Context, w http.ResponseWriter, c dataCall) {
	g.rewrite(c)
	ctx, cancel := context.WithTimeout(parent, g.timeout(c.params.Timeout))
	defer cancel()
	resp, err := g.data.Execute(ctx, c.req)
	g.finish(w, c, resp, err, true)
}

// readAt runs a read the node serves by level (none, weak, linearizable,
// auto; not strong) and answers it. Its deadline is a value, not a
// context with a timer: the read rounds and the state machine watch it
// (ReadOptions.Deadline).
func (g *Gateway) readAt(ctx context.Context, w http.ResponseWriter, c dataCall) {
	opts := c.readOptions()
	opts.Deadline = c.start.Add(g.timeout(c.params.Timeout))
	resp, err := g.data.Query(ctx, c.req, opts)
	g.finish(w, c, resp, err, false)
}

// rewrite makes c's statements deterministic before they enter the log
// (API.md 1.15): writes and strong reads only, unless noparse.
func (g *Gateway) rewrite(c dataCall) {
	if c.params.NoParse {
		return
	}
	o := sqlrw.Options{NoRandom: c.params.NoRWRandom, NoTime: c.params.NoRWTime, Now: time.Now(), Rand: rand.Reader}
	for _, s := range c.req.Statements {
		if out, changed := sqlrw.Rewrite(s.Sql, o); changed {
			s.Sql = out
		}
	}
}

func (c dataCall) readOptions() replica.ReadOptions {
	return replica.ReadOptions{Level: c.level, Freshness: c.params.Freshness, DBTimeout: c.params.DBTimeout}
}

// servedLocally reports whether a read at level is served from this node's
// own database: none always, auto on a read replica (API.md 1.8).
func (g *Gateway) servedLocally(level replica.Level) bool {
	return level == replica.LevelNone || (level == replica.LevelAuto && !g.state().Identity.Voter)
}

// finish writes the outcome of a data call.
func (g *Gateway) finish(w http.ResponseWriter, c dataCall, resp *cmdpb.Response, err error, writes bool) {
	if errors.Is(err, replica.ErrStaleRead) {
		requestError(w, replica.ErrStaleRead.Error(), c.params)
		return
	}
	if err != nil {
		g.writeError(w, err)
		return
	}
	g.servedBy(w, !writes && g.servedLocally(c.level))
	g.respond(w, resp, c.params, c.start, writes)
}

// handleExecute: POST /db/execute, writes through the log (API.md 1.1).
func (g *Gateway) handleExecute(w http.ResponseWriter, r *http.Request) {
	c, ok := g.prepare(w, r, endpoint{methods: []string{http.MethodPost}, write: true})
	if !ok {
		return
	}
	if c.params.Queue {
		g.rewrite(c)
		g.enqueue(w, r, c)
		return
	}
	g.execute(r.Context(), w, c)
}

// enqueue answers a queued write (API.md 1.9): a sequence number at once,
// or once the queue is flushed past it with ?wait.
func (g *Gateway) enqueue(w http.ResponseWriter, r *http.Request, c dataCall) {
	ctx, cancel := g.requestContext(r, c.params.Timeout)
	defer cancel()
	seq, err := g.queue.Enqueue(ctx, c.req.Statements)
	if err != nil {
		g.writeError(w, err)
		return
	}
	if c.params.Wait {
		timeout := c.params.Timeout
		if timeout <= 0 {
			timeout = queueWaitTimeout
		}
		wctx, wcancel := context.WithTimeout(r.Context(), timeout)
		defer wcancel()
		if err := g.queue.Wait(wctx, seq); err != nil {
			g.writeError(w, err)
			return
		}
	}
	env := rqjson.Envelope{SequenceNumber: seq, Time: time.Since(c.start).Seconds()}
	writeJSON(w, http.StatusOK, rqjson.AppendResponse(nil, nil, env, options(c.params, true)))
}

// handleQuery: GET ?q= or POST /db/query, reads at a consistency level.
func (g *Gateway) handleQuery(w http.ResponseWriter, r *http.Request) {
	c, ok := g.prepare(w, r, endpoint{methods: []string{http.MethodGet, http.MethodPost}, allowQ: true})
	if !ok {
		return
	}
	if c.level == replica.LevelStrong {
		g.rewrite(c)
	}
	if c.level == replica.LevelStrong {
		ctx, cancel := g.requestContext(r, c.params.Timeout)
		defer cancel()
		resp, err := g.data.Query(ctx, c.req, c.readOptions())
		g.finish(w, c, resp, err, false)
		return
	}
	g.readAt(r.Context(), w, c)
}

// handleRequest: POST /db/request, mixed reads and writes (API.md 1.8): a
// request of reads only is a read at its level; one holding any write goes
// through the log whole, each statement answering in its own shape.
func (g *Gateway) handleRequest(w http.ResponseWriter, r *http.Request) {
	c, ok := g.prepare(w, r, endpoint{methods: []string{http.MethodPost}})
	if !ok {
		return
	}
	ctx, cancel := g.requestContext(r, c.params.Timeout)
	defer cancel()
	if c.level != replica.LevelStrong {
		// The read path refuses each write, statement by statement, so a
		// refusal anywhere means the request holds a write.
		resp, err := g.data.Query(ctx, c.req, c.readOptions())
		if err != nil || !hasWrite(resp) {
			g.finish(w, c, resp, err, true)
			return
		}
		if err := g.admit(false); err != nil {
			g.writeError(w, err)
			return
		}
	}
	g.rewrite(c)
	resp, err := g.data.Execute(ctx, c.req)
	g.finish(w, c, resp, err, true)
}

func hasWrite(resp *cmdpb.Response) bool {
	for _, r := range resp.GetResults() {
		if r.GetError() == sm.ErrTextWriteViaQuery {
			return true
		}
	}
	return false
}

// handleSQL: /db/sql shows what rewriting does to statements, changing
// nothing (API.md 1.15).
func (g *Gateway) handleSQL(w http.ResponseWriter, r *http.Request) {
	if !methods(w, r, http.MethodGet, http.MethodPost) {
		return
	}
	params, stmts, err := g.parse(w, r, true)
	if err != nil {
		g.writeError(w, err)
		return
	}
	type shown struct {
		Original  string `json:"original"`
		Rewritten string `json:"rewritten"`
	}
	out := struct {
		Results []shown `json:"results"`
	}{Results: make([]shown, 0, len(stmts))}
	o := sqlrw.Options{NoRandom: params.NoRWRandom, NoTime: params.NoRWTime, Now: time.Now(), Rand: rand.Reader}
	for _, s := range stmts {
		rw, _ := sqlrw.Rewrite(s.Sql, o)
		out.Results = append(out.Results, shown{Original: s.Sql, Rewritten: rw})
	}
	writeJSON(w, http.StatusOK, marshal(out, params.Pretty))
}

// rqjsonParams parses r's query parameters.
func rqjsonParams(r *http.Request) (rqjson.Params, error) {
	return rqjson.ParseRawQuery(r.URL.RawQuery)
}
