package sm

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/mattn/go-sqlite3"
)

// TruncateWAL is a Lookup query for the replica's WAL-size snapshot check
// (rqlited's -raft-snap-wal-size): when the WAL file is at least MinSize
// bytes, it is checkpointed into the database file and truncated to zero.
// MinSize <= 0 only reports the size.
type TruncateWAL struct{ MinSize int64 }

// TruncateWALResult reports the WAL's size before and after; Busy says the
// checkpoint could not complete (a reader still needed the WAL) and the
// file was left as it was.
type TruncateWALResult struct {
	Before, After int64
	Busy          bool
}

// truncateBusyTimeout bounds how long the checkpoint waits for the writer
// lock and for readers; while it holds the lock the apply path waits, so
// it gives up quickly (Busy) rather than stall writes, and the next check
// tries again.
const truncateBusyTimeout = 100

func walSize(path string) (int64, error) {
	fi, err := os.Stat(path + "-wal")
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

// truncateWAL runs under mu.RLock (Lookup). A TRUNCATE checkpoint, from a
// connection of its own, copies every WAL frame into the database file,
// fsyncs it and empties the WAL; SQLite's own checkpoints (PASSIVE, at
// 1000 pages) never shrink the file.
func (s *StateMachine) truncateWAL(q *TruncateWAL) (*TruncateWALResult, error) {
	before, err := walSize(s.path)
	if err != nil {
		return nil, fmt.Errorf("wal size: %w", err)
	}
	res := &TruncateWALResult{Before: before, After: before}
	if q.MinSize <= 0 || before < q.MinSize {
		return res, nil
	}
	s.checkpointMu.Lock()
	defer s.checkpointMu.Unlock()
	c, err := openCheckpointer(s.path, truncateBusyTimeout)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	err = eachRow(context.Background(), c, "PRAGMA wal_checkpoint(TRUNCATE)", 3, func(v []driver.Value) error {
		busy, _ := v[0].(int64)
		res.Busy = busy != 0
		return nil
	})
	if err != nil {
		var se sqlite3.Error
		if errors.As(err, &se) && (se.Code == sqlite3.ErrBusy || se.Code == sqlite3.ErrLocked) {
			res.Busy = true
			return res, nil
		}
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	if res.After, err = walSize(s.path); err != nil {
		return nil, fmt.Errorf("wal size: %w", err)
	}
	return res, nil
}
