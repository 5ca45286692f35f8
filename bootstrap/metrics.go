package bootstrap

import (
	"context"

	"github.com/skiffdb/skiff/actors/lifecycle"
	"github.com/skiffdb/skiff/actors/queue"
	"github.com/skiffdb/skiff/gateway"
	"github.com/skiffdb/skiff/gateway/metrics"
	"github.com/skiffdb/skiff/sm"
)

// newMetrics builds the node's Prometheus registry over the same published
// state /status reads: lifecycle's State, the queue's stats, the CDC and
// ingest sections and the SQLite files.
func newMetrics(cfg Config, life *lifecycle.Lifecycle, q *queue.Queue, sections []gateway.Section) (*metrics.Metrics, error) {
	secs := make([]metrics.Section, 0, len(sections))
	for _, s := range sections {
		secs = append(secs, metrics.Section{Name: s.Name, Status: s.Status, Vars: s.Vars})
	}
	smDir := cfg.smDir()
	return metrics.New(metrics.Config{
		State: life.State,
		Queue: func(ctx context.Context) (metrics.QueueStats, error) {
			st, err := q.Stats(ctx)
			return metrics.QueueStats{Pending: st.Pending, SequenceNumber: st.SequenceNumber}, err
		},
		DBPath:   func() string { return sm.LivePath(smDir) },
		Sections: secs,
		Version:  cfg.Version,
	})
}
