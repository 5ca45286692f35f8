package gateway

import (
	"errors"
	"io"
	"net/http"
	"regexp"
	"time"

	"github.com/skiffdb/skiff/actors/lifecycle"
	"github.com/skiffdb/skiff/actors/replica"
	"github.com/skiffdb/skiff/gateway/rqjson"
	"github.com/skiffdb/skiff/sm"
	"github.com/skiffdb/skiff/sm/cmdpb"
)

// disallowedPragma matches the PRAGMAs rqlite refuses (API.md 1.6):
// they change durability or locking under the database's feet.
var disallowedPragma = regexp.MustCompile(`(?i)^\s*pragma\s+("?\w+"?\s*\.\s*)?("?(journal_mode|wal_autocheckpoint|synchronous|query_only)"?\s*=|"?wal_checkpoint\b)`)

const errTextDisallowedPragma = "disallowed pragma"

func hasDisallowedPragma(stmts []*cmdpb.Statement) bool {
	for _, s := range stmts {
		if disallowedPragma.MatchString(s.GetSql()) {
			return true
		}
	}
	return false
}

// readBody reads a size-limited body.
func (g *Gateway) readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
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
	params, err := rqjson.ParseParams(r.URL.Query())
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
func respond(w http.ResponseWriter, resp *cmdpb.Response, p rqjson.Params, start time.Time, writes bool) {
	env := rqjson.Envelope{Error: resp.GetError(), Time: time.Since(start).Seconds()}
	if p.RaftIndex {
		env.RaftIndex = resp.GetRaftIndex()
	}
	writeJSON(w, http.StatusOK, rqjson.AppendResponse(nil, resp.GetResults(), env, options(p, writes)))
}

func requestError(w http.ResponseWriter, msg string, p rqjson.Params) {
	writeJSON(w, http.StatusOK, rqjson.AppendError(nil, msg, p.Pretty))
}

// handleExecute: POST /db/execute, writes through the log (API.md 1.1).
func (g *Gateway) handleExecute(w http.ResponseWriter, r *http.Request) {
	if !methods(w, r, http.MethodPost) {
		return
	}
	start := time.Now()
	params, stmts, err := g.parse(w, r, false)
	if err != nil {
		g.writeError(w, err)
		return
	}
	if hasDisallowedPragma(stmts) {
		requestError(w, errTextDisallowedPragma, params)
		return
	}
	if err := g.admit(false); err != nil {
		g.writeError(w, err)
		return
	}
	for _, s := range stmts {
		// RETURNING makes a write answer with rows (API.md 1.4).
		s.ReturnsRows = rqjson.HasReturning(s.GetSql())
	}
	ctx, cancel := g.requestContext(r, params.Timeout)
	defer cancel()
	resp, err := g.data.Execute(ctx, &cmdpb.Request{Statements: stmts, Transaction: params.Transaction, Timings: params.Timings})
	if err != nil {
		g.writeError(w, err)
		return
	}
	respond(w, resp, params, start, true)
}

// handleQuery: GET ?q= or POST /db/query, reads at a consistency level.
func (g *Gateway) handleQuery(w http.ResponseWriter, r *http.Request) {
	if !methods(w, r, http.MethodGet, http.MethodPost) {
		return
	}
	start := time.Now()
	params, stmts, err := g.parse(w, r, true)
	if err != nil {
		g.writeError(w, err)
		return
	}
	if hasDisallowedPragma(stmts) {
		requestError(w, errTextDisallowedPragma, params)
		return
	}
	level := replica.ParseLevel(params.Level)
	if err := g.admit(level == replica.LevelNone); err != nil {
		g.writeError(w, err)
		return
	}
	for _, s := range stmts {
		s.ReturnsRows = true
	}
	ctx, cancel := g.requestContext(r, params.Timeout)
	defer cancel()
	resp, err := g.data.Query(ctx, &cmdpb.Request{Statements: stmts, Transaction: params.Transaction, Timings: params.Timings}, level)
	if err != nil {
		g.writeError(w, err)
		return
	}
	respond(w, resp, params, start, false)
}

// handleRequest: POST /db/request, mixed reads and writes (API.md 1.8): a
// request of reads only is a read at its level; one holding any write goes
// through the log whole, each statement answering in its own shape.
func (g *Gateway) handleRequest(w http.ResponseWriter, r *http.Request) {
	if !methods(w, r, http.MethodPost) {
		return
	}
	start := time.Now()
	params, stmts, err := g.parse(w, r, false)
	if err != nil {
		g.writeError(w, err)
		return
	}
	if hasDisallowedPragma(stmts) {
		requestError(w, errTextDisallowedPragma, params)
		return
	}
	level := replica.ParseLevel(params.Level)
	if err := g.admit(level == replica.LevelNone); err != nil {
		g.writeError(w, err)
		return
	}
	for _, s := range stmts {
		// On the log path a statement with ReturnsRows runs as a query when
		// it has result columns and as a write otherwise.
		s.ReturnsRows = true
	}
	req := &cmdpb.Request{Statements: stmts, Transaction: params.Transaction, Timings: params.Timings}
	ctx, cancel := g.requestContext(r, params.Timeout)
	defer cancel()
	var resp *cmdpb.Response
	if level != replica.LevelStrong {
		// The read path refuses each write, statement by statement, so a
		// refusal anywhere means the request holds a write.
		resp, err = g.data.Query(ctx, req, level)
		if err == nil && !hasWrite(resp) {
			respond(w, resp, params, start, true)
			return
		}
		if err == nil {
			if err = g.admit(false); err != nil {
				g.writeError(w, err)
				return
			}
		}
	}
	if err == nil || level == replica.LevelStrong {
		resp, err = g.data.Execute(ctx, req)
	}
	if err != nil {
		g.writeError(w, err)
		return
	}
	respond(w, resp, params, start, true)
}

func hasWrite(resp *cmdpb.Response) bool {
	for _, r := range resp.GetResults() {
		if r.GetError() == sm.ErrTextWriteViaQuery {
			return true
		}
	}
	return false
}
