package sm

import (
	"context"
	"path/filepath"
	"strconv"
	"time"
)

// DBStats is a Lookup query for the live database's numbers that rqlite
// shows in /status (API.md 2.1, store.sqlite3): the replica samples it and
// publishes the answer, a *DBStatsResult.
type DBStats struct {
	// Ctx bounds the wait for a reader connection (all may be busy).
	Ctx context.Context
}

// DBStatsResult describes the live database.
type DBStatsResult struct {
	// Path is the live database file.
	Path string
	// Size is page_count * page_size: the database's size as SQLite sees
	// it, including pages still in the WAL (rqlite's sqlite3.size).
	Size int64
}

// dbStats reads the page count and size on a reader connection: a read
// transaction sees every committed page, the WAL's included.
func (s *StateMachine) dbStats(q *DBStats) (*DBStatsResult, error) {
	ctx := q.Ctx
	if ctx == nil {
		ctx = context.Background()
	}
	r, err := s.takeReader(ctx, time.Time{})
	if err != nil {
		return nil, err
	}
	defer s.giveReader(r)
	pages, err := queryInt64(r.c, "PRAGMA page_count")
	if err != nil {
		return nil, err
	}
	size, err := queryInt64(r.c, "PRAGMA page_size")
	if err != nil {
		return nil, err
	}
	return &DBStatsResult{Path: s.path, Size: pages * size}, nil
}

// LivePath returns the live database file of the state machine whose
// directory is dir ("" before the first Open). It reads only the CURRENT
// file, so a status request may call it in any phase.
func LivePath(dir string) string {
	gen, err := readCurrent(dir)
	if err != nil || gen == 0 {
		return ""
	}
	return filepath.Join(dir, dbName(gen))
}

// Connection settings, shared by the DSNs (conn.go) and Pragmas.
const (
	busyTimeoutMS = 5000
	// walAutocheckpoint is SQLite's default, which Skiff keeps.
	walAutocheckpoint = 1000
)

// Pragmas describes the settings of the writer (rw) and reader (ro)
// connections as PRAGMA would report them (rqlite's
// store.sqlite3.pragmas). The writer runs synchronous=NORMAL between
// Syncs (which raise it to FULL for one commit).
func Pragmas(foreignKeys bool) (rw, ro map[string]string) {
	fk := "0"
	if foreignKeys {
		fk = "1"
	}
	common := func() map[string]string {
		return map[string]string{
			"busy_timeout":       strconv.Itoa(busyTimeoutMS),
			"foreign_keys":       fk,
			"journal_mode":       "wal",
			"synchronous":        "1",
			"wal_autocheckpoint": strconv.Itoa(walAutocheckpoint),
		}
	}
	rw, ro = common(), common()
	ro["query_only"] = "1"
	return rw, ro
}
