package gateway

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/skiffdb/skiff/gateway/rqjson"
	"github.com/skiffdb/skiff/gateway/sqlrw"
	"github.com/skiffdb/skiff/sm"
	"github.com/skiffdb/skiff/sm/cmdpb"
)

// sqliteMagic starts every SQLite database file.
var sqliteMagic = []byte("SQLite format 3\x00")

// handleLoad: POST /db/load with a SQLite file or a SQL dump, sniffed from
// the content whatever the Content-Type (API.md 1.10). Either way it
// becomes one entry in the log, so every replica loads the same thing: a
// SQL dump runs as one statement string in a transaction; a SQLite file is
// first turned into a dump and replaces the whole database.
func (g *Gateway) handleLoad(w http.ResponseWriter, r *http.Request) {
	if !methods(w, r, http.MethodPost) {
		return
	}
	start := time.Now()
	params, err := rqjsonParams(r)
	if err != nil {
		g.writeError(w, err)
		return
	}
	body, err := g.readBody(w, r)
	if err != nil {
		g.writeError(w, err)
		return
	}
	if err := g.admit(false); err != nil {
		g.writeError(w, err)
		return
	}
	binary := bytes.HasPrefix(body, sqliteMagic)
	text := string(body)
	if binary {
		if text, err = g.dumpUpload(r, body); err != nil {
			g.writeError(w, err)
			return
		}
	}
	text = sqlrw.StripTxControl(text)
	if strings.TrimSpace(text) == "" && !binary {
		g.writeError(w, rqjson.ErrNoStatements)
		return
	}
	c := dataCall{start: start, params: params, req: &cmdpb.Request{
		Statements: []*cmdpb.Statement{{Sql: text}}, Transaction: true, ReplaceAll: binary, Timings: params.Timings,
	}}
	g.rewrite(c)
	ctx, cancel := g.requestContext(r, params.Timeout)
	defer cancel()
	resp, err := g.data.Execute(ctx, c.req)
	if err != nil {
		g.writeError(w, err)
		return
	}
	if binary && resp.GetError() == "" && (len(resp.Results) == 0 || resp.Results[0].GetError() == "") {
		// A binary load answers with no results (API.md 1.10).
		resp.Results = nil
	}
	respond(w, resp, params, c.start, true)
}

// dumpUpload turns an uploaded SQLite file into a SQL dump.
func (g *Gateway) dumpUpload(r *http.Request, body []byte) (string, error) {
	f, err := os.CreateTemp("", "skiff-load-*.sqlite")
	if err != nil {
		return "", fmt.Errorf("stage upload: %w", err)
	}
	path := f.Name()
	defer func() {
		for _, suffix := range []string{"", "-wal", "-shm", "-journal"} {
			_ = os.Remove(path + suffix)
		}
	}()
	_, err = f.Write(body)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", fmt.Errorf("stage upload: %w", err)
	}
	var dump strings.Builder
	if err := sm.DumpFile(r.Context(), path, &dump); err != nil {
		return "", err
	}
	return dump.String(), nil
}

// handleBoot: POST /boot streams a SQLite file into a single-node cluster,
// replacing its database (API.md 1.10). The body is never held in memory:
// it goes straight to a file beside the database.
func (g *Gateway) handleBoot(w http.ResponseWriter, r *http.Request) {
	if !methods(w, r, http.MethodPost) {
		return
	}
	params, err := rqjsonParams(r)
	if err != nil {
		g.writeError(w, err)
		return
	}
	if err := g.admit(false); err != nil {
		g.writeError(w, err)
		return
	}
	timeout := params.Timeout
	if timeout <= 0 {
		timeout = backupTimeout
	}
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()
	if err := g.data.Boot(ctx, r.Body); err != nil {
		g.writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusOK)
}
