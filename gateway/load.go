package gateway

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/skiffdb/skiff/actors/replica"
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
// SQL dump runs as one statement string in a transaction; a SQLite file
// replaces the whole database, streamed to disk as /boot does on a
// single-voter cluster, else turned into a dump first.
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
	br := bufio.NewReaderSize(r.Body, 256<<10)
	if head, _ := br.Peek(len(sqliteMagic)); bytes.Equal(head, sqliteMagic) {
		if err := g.admit(false); err != nil {
			g.writeError(w, err)
			return
		}
		booted, err := g.loadByBoot(r, br, params)
		if booted {
			if err != nil {
				g.writeError(w, err)
				return
			}
			// A binary load answers with no results (API.md 1.10).
			g.respond(w, &cmdpb.Response{}, params, start, true)
			return
		}
	}
	r.Body = readCloser{br, r.Body}
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
	g.respond(w, resp, params, c.start, true)
}

type readCloser struct {
	io.Reader
	io.Closer
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// loadByBoot streams a binary load into the database as /boot does: the
// body goes straight to a file beside the database, is checked, and
// replaces the database at one log entry, with no copy in memory and no
// size limit. A cluster of more than one voter refuses it before reading
// anything (the staged file would exist on this node only); booted false
// then says the body is untouched and the load goes through the log as a
// dump instead.
func (g *Gateway) loadByBoot(r *http.Request, br *bufio.Reader, params rqjson.Params) (booted bool, _ error) {
	timeout := params.Timeout
	if timeout <= 0 {
		timeout = backupTimeout
	}
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()
	cr := &countingReader{r: br}
	err := g.data.Boot(ctx, cr)
	if errors.Is(err, replica.ErrNotSingleNode) && cr.n == 0 {
		return false, nil
	}
	return true, err
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
