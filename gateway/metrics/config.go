package metrics

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/skiffdb/skiff/actors/lifecycle"
)

// ErrInvalidConfig is returned by Config.Validate.
var ErrInvalidConfig = errors.New("invalid metrics config")

// DefaultQueueTimeout bounds asking the queue actor for its depth during a
// scrape (it answers at once; the bound keeps a stopped one from stalling
// the scrape). The same bound as /status uses.
const DefaultQueueTimeout = 200 * time.Millisecond

// QueueStats is what a scrape reads from the queued-writes actor.
type QueueStats struct {
	// Pending is the number of queued requests not yet written.
	Pending int
	// SequenceNumber is the last sequence number persisted.
	SequenceNumber int64
}

// Section is another actor's published section, as /status and
// /debug/vars show it (gateway.Section): its functions read published
// values only and never block.
type Section struct {
	Name   string
	Status func() any
	Vars   func() any
}

// Config configures the metrics.
type Config struct {
	// State returns the latest published lifecycle state (required).
	State func() *lifecycle.State
	// Queue returns the queued-writes actor's stats; nil leaves the queue
	// metrics out.
	Queue func(ctx context.Context) (QueueStats, error)
	// QueueTimeout bounds Queue (default DefaultQueueTimeout).
	QueueTimeout time.Duration
	// DBPath returns the live SQLite file, used until the replica's first
	// sample names it; its size and its WAL's ("-wal") are read at scrape
	// time. Nil: known from the sample only.
	DBPath func() string
	// Sections are the CDC and ingest sections, when those are on. Only
	// the names this package knows ("cdc", "ingest") are exported.
	Sections []Section
	// Version is exported in skiff_build_info.
	Version string
}

// WithDefaults fills zero fields.
func (c Config) WithDefaults() Config {
	if c.QueueTimeout == 0 {
		c.QueueTimeout = DefaultQueueTimeout
	}
	if c.Version == "" {
		c.Version = "unknown"
	}
	return c
}

// Validate reports whether c is usable.
func (c Config) Validate() error {
	switch {
	case c.State == nil:
		return fmt.Errorf("%w: State is required", ErrInvalidConfig)
	case c.QueueTimeout < 0:
		return fmt.Errorf("%w: QueueTimeout %s < 0", ErrInvalidConfig, c.QueueTimeout)
	}
	for _, s := range c.Sections {
		if s.Name == "" {
			return fmt.Errorf("%w: a section has no name", ErrInvalidConfig)
		}
	}
	return nil
}
