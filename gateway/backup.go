package gateway

import (
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/skiffdb/skiff/actors/replica"
	"github.com/skiffdb/skiff/sm"
)

// backupTimeout bounds a backup without a timeout parameter: a large
// database takes long to copy, and a client that goes away cancels it.
const backupTimeout = 24 * time.Hour

// trackingWriter remembers whether the response has started, because a
// failure after that can only be reported by aborting the connection.
type trackingWriter struct {
	w       http.ResponseWriter
	started bool
	ctype   string
}

func (t *trackingWriter) Write(p []byte) (int, error) {
	if !t.started {
		t.started = true
		t.w.Header().Set("Content-Type", t.ctype)
		t.w.WriteHeader(http.StatusOK)
	}
	return t.w.Write(p)
}

// handleBackup: GET /db/backup streams a consistent copy of the database:
// SQLite file (default, fmt=delete for rollback mode) or SQL dump
// (fmt=sql, tables=), optionally vacuumed or gzip-compressed (API.md 1.10).
func (g *Gateway) handleBackup(w http.ResponseWriter, r *http.Request) {
	if !methods(w, r, http.MethodGet) {
		return
	}
	params, err := rqjsonParams(r)
	if err != nil {
		g.writeError(w, err)
		return
	}
	b := &sm.Backup{Tables: params.Tables, Vacuum: params.Vacuum}
	ctype := "application/octet-stream"
	switch params.Fmt {
	case "", "binary":
		b.Format = sm.BackupBinary
	case "delete":
		b.Format = sm.BackupDelete
	case "sql":
		b.Format, ctype = sm.BackupSQL, "application/sql"
	default:
		g.writeError(w, fmt.Errorf("%w: %q", ErrBadFormat, params.Fmt))
		return
	}
	if err := g.admit(params.NoLeader); err != nil {
		g.writeError(w, err)
		return
	}
	timeout := params.Timeout
	if timeout <= 0 {
		timeout = backupTimeout
	}
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()
	tw := &trackingWriter{w: w, ctype: ctype}
	b.W = tw
	var zw *gzip.Writer
	if params.Compress {
		zw = gzip.NewWriter(tw)
		b.W = zw
		// gzip writes far slower than the disk reads: copy first rather
		// than hold the pinned state (and the WAL's checkpoints) that long.
		b.CopyFirst = true
	}
	_, err = g.data.Backup(ctx, b)
	if err == nil && zw != nil {
		err = zw.Close()
	}
	if err != nil {
		if tw.started {
			// Half a backup must not look like a whole one.
			g.log.Warn("backup aborted mid-stream")
			panic(http.ErrAbortHandler)
		}
		g.writeError(w, err)
		return
	}
	if !tw.started {
		tw.Write(nil) //nolint:errcheck // an empty body still gets its headers
	}
}

// handleSnapshot: POST /snapshot forces a Raft snapshot and log truncation,
// keeping trailing_logs entries; 204 when nothing is new (API.md 1.10).
func (g *Gateway) handleSnapshot(w http.ResponseWriter, r *http.Request) {
	if !methods(w, r, http.MethodPost) {
		return
	}
	params, err := rqjsonParams(r)
	if err != nil {
		g.writeError(w, err)
		return
	}
	if err := g.admit(false); err != nil && !(r.URL.Query().Has("export") && (errors.Is(err, ErrNoLeader) || errors.Is(err, ErrRecovering))) {
		g.writeError(w, err)
		return
	}
	trailing := int64(-1)
	if params.HasTrailingLogs {
		trailing = int64(max(0, params.TrailingLogs))
	}
	ctx, cancel := g.requestContext(r, params.Timeout)
	defer cancel()
	if r.URL.Query().Has("export") {
		// Skiff: a whole snapshot written under the data directory, for
		// recovery from lost quorum (docs/cluster.md). Needs no quorum,
		// so no phase check beyond a started replica.
		dir, err := g.data.ExportSnapshot(ctx)
		if err != nil {
			g.writeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, append(append([]byte(`{"export_dir":`), jsonString(dir)...), "}\n"...))
		return
	}
	if _, err := g.data.Snapshot(ctx, trailing); err != nil {
		if errors.Is(err, replica.ErrNothingToSnapshot) {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		g.writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusOK)
}

// handleReap: POST /reap checkpoints the SQLite WAL. Dragonboat removes
// its own obsolete snapshots as it takes new ones, so none are left here
// to reap.
func (g *Gateway) handleReap(w http.ResponseWriter, r *http.Request) {
	if !methods(w, r, http.MethodPost) {
		return
	}
	params, err := rqjsonParams(r)
	if err != nil {
		g.writeError(w, err)
		return
	}
	if err := g.admit(true); err != nil {
		g.writeError(w, err)
		return
	}
	ctx, cancel := g.requestContext(r, params.Timeout)
	defer cancel()
	res, err := g.data.Checkpoint(ctx)
	if err != nil {
		g.writeError(w, err)
		return
	}
	checkpointed := 0
	if res.Frames > 0 {
		checkpointed = 1
	}
	writeJSON(w, http.StatusOK, []byte(fmt.Sprintf(`{"snapshots_reaped":0,"wals_checkpointed":%d}`, checkpointed)))
}
