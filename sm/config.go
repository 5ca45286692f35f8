package sm

import (
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/skiffdb/skiff/sm/failpoint"
)

// Defaults for Config.
const (
	// DefaultReadConns bounds concurrent local reads; SQLite readers in WAL
	// mode do not block each other, so this is about memory, not locking.
	DefaultReadConns = 8
	// DefaultDedupWindow is how many log entries a request ID is remembered
	// for. A retried proposal is deduplicated when it is applied within this
	// many entries of the original, which covers a retry inside any request
	// timeout at tens of thousands of writes per second.
	DefaultDedupWindow = 200_000
	// DefaultCheckpointInterval is the least time between two background
	// checkpoints (checkpointer.go). Single-row inserts at a node's
	// highest rate add about 1,500 WAL pages a second, so the WAL stays
	// well under SQLite's automatic threshold of 1,000 pages, which is
	// left as the backstop for faster growth (large transactions).
	DefaultCheckpointInterval = 250 * time.Millisecond
)

// Config configures a state machine.
type Config struct {
	// Dir holds the SQLite files of this replica (created if missing).
	Dir string
	// ReadConns is the size of the read-only connection pool for Lookup.
	ReadConns int
	// DedupWindow is the number of entries request IDs are remembered for.
	DedupWindow uint64
	// CheckpointInterval is the least time between two checkpoints of the
	// WAL run in the background after commits (checkpointer.go); 0:
	// DefaultCheckpointInterval; negative: none, only SQLite's automatic
	// checkpoint inside the commit that crosses its threshold.
	CheckpointInterval time.Duration
	// ForeignKeys turns on PRAGMA foreign_keys (rqlited's -fk); it must be
	// the same on every node.
	ForeignKeys bool
	// Notify receives progress events. It is called from Dragonboat's
	// workers and must not block (DRAGONBOAT.md 0.8). Nil drops events.
	Notify func(Event)
	// Logger receives the state machine's logs. Nil means no logs.
	Logger *zap.Logger
	// Failpoints (tests only, failpoint package); nil has none.
	Failpoints *failpoint.Set
	// Capture turns on CDC capture; nil captures nothing (and registers
	// no hook).
	Capture *CaptureConfig
	// SnapshotViaCopy makes SaveSnapshot copy the pinned state aside with
	// SQLite's backup API and stream the copy: the path before issue 17,
	// kept for measured comparison (BenchmarkSnapshotStages) and as the
	// fallback when the WAL cannot be checkpointed at PrepareSnapshot.
	SnapshotViaCopy bool
	// BackupViaAPI makes /db/backup copy the pinned state with SQLite's
	// backup API even when the database file could be copied directly
	// (for measuring one against the other).
	BackupViaAPI bool
	// Tap, if set, is the receive tap the Raft transport feeds this
	// replica's incoming snapshot streams to (receivetap.go); an install
	// uses the copy it wrote when it holds the stream's database.
	Tap *ReceiveTap
	// Observe, if set, is told once per Update batch how long it took, how
	// many entries it applied and how many statements ran (/metrics). It
	// runs on the apply goroutine and must not block.
	Observe func(d time.Duration, entries, statements int)
}

// WithDefaults returns c with zero fields set to their defaults.
func (c Config) WithDefaults() Config {
	if c.ReadConns == 0 {
		c.ReadConns = DefaultReadConns
	}
	if c.DedupWindow == 0 {
		c.DedupWindow = DefaultDedupWindow
	}
	if c.CheckpointInterval == 0 {
		c.CheckpointInterval = DefaultCheckpointInterval
	}
	if c.Notify == nil {
		c.Notify = func(Event) {}
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	return c
}

// Validate reports whether c can be used.
func (c Config) Validate() error {
	switch {
	case c.Dir == "":
		return fmt.Errorf("%w: Dir is empty", ErrInvalidConfig)
	case c.ReadConns < 1:
		return fmt.Errorf("%w: ReadConns %d < 1", ErrInvalidConfig, c.ReadConns)
	case c.DedupWindow < 1:
		return fmt.Errorf("%w: DedupWindow is 0", ErrInvalidConfig)
	case c.Capture != nil:
		return c.Capture.validate()
	}
	return nil
}
