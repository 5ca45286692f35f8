package replica

import (
	"time"

	"go.uber.org/zap"

	"github.com/skiffdb/skiff/sm/cmdpb"
)

// autoVacuumCheck is how often the leader looks whether a VACUUM is due:
// the interval itself when shorter.
const autoVacuumCheck = time.Minute

// vacuumJob proposes a VACUUM when this node has led for
// AutoVacuumInterval since it became leader or since its last one (since
// holds that time; zero while not leading). Through the log, every node
// VACUUMs at the same index: VACUUM may renumber the rowids of tables
// without an INTEGER PRIMARY KEY, which nodes vacuuming on their own would
// then disagree on.
func (r *Replica) vacuumJob(run *running, since *time.Time) {
	leader, _, ok, err := run.nh.GetLeaderID(r.cfg.ShardID)
	if err != nil || !ok || leader != r.cfg.ReplicaID {
		*since = time.Time{}
		return
	}
	now := time.Now()
	if since.IsZero() {
		*since = now
		return
	}
	if now.Sub(*since) < r.cfg.AutoVacuumInterval {
		return
	}
	*since = now
	ctx, cancel := r.withDeadline(r.jobsCtx)
	defer cancel()
	t0 := time.Now()
	resp, err := r.propose(ctx, run.nh, cmdpb.Command_TYPE_EXECUTE,
		&cmdpb.Request{Statements: []*cmdpb.Statement{{Sql: "VACUUM"}}})
	switch {
	case err != nil:
		r.log.Warn("automatic VACUUM failed; next one after the interval", zap.Error(err))
	case len(resp.GetResults()) == 1 && resp.GetResults()[0].GetError() != "":
		r.log.Warn("automatic VACUUM failed; next one after the interval", zap.String("error", resp.GetResults()[0].GetError()))
	default:
		r.log.Info("automatic VACUUM done", zap.Duration("took", time.Since(t0)), zap.Uint64("index", resp.GetRaftIndex()))
	}
}

// vacuumCheckInterval is how often vacuumJob runs for interval.
func vacuumCheckInterval(interval time.Duration) time.Duration { return min(interval, autoVacuumCheck) }
