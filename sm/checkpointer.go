package sm

import (
	"time"

	"go.uber.org/zap"
)

// walCheckpointer copies the WAL into the database file off the apply
// path. SQLite's own automatic checkpoint runs inside the commit that
// takes the WAL past wal_autocheckpoint pages: on the apply goroutine,
// with two fsyncs (the WAL, then the database file), so every write in
// flight waited for it (apply batches of 10-25 ms a few times a second
// under inserts, where the rest took under 2.5 ms). Here a goroutine of
// its own runs a PASSIVE checkpoint, which never blocks the writer, at
// most once per interval after a commit nudged it, so the WAL stays
// under the automatic threshold at the write rates a node sustains, and
// SQLite's own checkpoint is left as the backstop for faster growth.
//
// It is an actor: it owns nothing but its loop; each checkpoint takes the
// state machine's read lock (as a Lookup does), so an install or Close
// never swaps the file under it.
type walCheckpointer struct {
	interval time.Duration
	// checkpoint runs one PASSIVE checkpoint of the live database.
	checkpoint func() (*CheckpointResult, error)
	log        *zap.Logger
	nudgec     chan struct{}
	stopc      chan struct{}
	done       chan struct{}
}

func newWALCheckpointer(interval time.Duration, checkpoint func() (*CheckpointResult, error), log *zap.Logger) *walCheckpointer {
	return &walCheckpointer{interval: interval, checkpoint: checkpoint, log: log,
		nudgec: make(chan struct{}, 1), stopc: make(chan struct{}), done: make(chan struct{})}
}

// nudge tells the checkpointer a commit added to the WAL. It never blocks:
// nudges while one is pending, or while the checkpointer waits out its
// interval, are one.
func (c *walCheckpointer) nudge() {
	select {
	case c.nudgec <- struct{}{}:
	default:
	}
}

func (c *walCheckpointer) run() {
	defer close(c.done)
	for {
		select {
		case <-c.nudgec:
		case <-c.stopc:
			return
		}
		if _, err := c.checkpoint(); err != nil {
			// ErrClosed between an install's swap and the next open, or a
			// busy lock: the next nudge tries again, and SQLite's own
			// checkpoint still bounds the WAL.
			c.log.Debug("background checkpoint", zap.Error(err))
		}
		select {
		case <-time.After(c.interval):
		case <-c.stopc:
			return
		}
	}
}

// stop ends run and waits for it; a checkpoint in progress completes
// first. Call it without holding the state machine's lock.
func (c *walCheckpointer) stop() {
	close(c.stopc)
	<-c.done
}
