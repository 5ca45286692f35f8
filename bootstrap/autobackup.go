package bootstrap

import (
	"errors"
	"fmt"
	"os"

	"go.uber.org/zap"

	"github.com/skiffdb/skiff/actors/backup"
	"github.com/skiffdb/skiff/actors/lifecycle"
	"github.com/skiffdb/skiff/actors/replica"
	"github.com/skiffdb/skiff/gateway"
)

// newUploader builds the -auto-backup uploader (nil when off) and its
// /status and /debug/vars sections. It uploads while lifecycle says this
// node leads and serves data, through the replica's Backup (/db/backup's
// path); serving says no -auto-restore is still to boot.
func newUploader(cfg Config, life *lifecycle.Lifecycle, rep *replica.Replica, serving func() bool, log *zap.Logger) (*backup.Uploader, []gateway.Section, error) {
	if cfg.AutoBackup == nil {
		return nil, nil, nil
	}
	up, err := backup.New(backup.UploaderConfig{
		Backup: *cfg.AutoBackup, Dir: cfg.DataDir,
		// Before a restore's boot there is nothing to back up.
		IsLeader: func() bool {
			st := life.State()
			return serving() && st.IsLeader() && st.ServesData()
		},
		Changed:      life.Changed,
		AppliedIndex: func() uint64 { return life.State().Progress.AppliedIndex },
		Logger:       log,
	}, rep)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: -auto-backup: %w", ErrInvalidConfig, err)
	}
	return up, []gateway.Section{
		{Name: backup.StatusSection, Status: up.Status},
		{Name: backup.VarsSection, Vars: up.Vars},
	}, nil
}

// downloadRestore fetches and checks the -auto-restore backup on a new
// data directory, before the identity is saved: a failure leaves the
// directory new. A failed download with continue_on_failure returns nil
// (start without it, as rqlite); a download that is not a database never
// passes.
func (n *Node) downloadRestore() (*backup.Restored, error) {
	c := n.cfg
	n.log.Info("auto-restore requested, initiating download")
	r, err := backup.Download(n.stopCtx, *c.AutoRestore, c.DataDir, nil, n.log.Named("restore"))
	if err == nil {
		n.log.Info("auto-restore file downloaded and checked", zap.Int64("bytes", r.Size),
			zap.Bool("gzip", r.Compressed), zap.Duration("duration", r.Duration))
		return r, nil
	}
	if c.AutoRestore.ContinueOnFailure && !errors.Is(err, backup.ErrInvalidBackup) && n.stopCtx.Err() == nil {
		n.log.Warn("failed to download auto-restore file, continuing with node startup anyway (continue_on_failure)", zap.Error(err))
		return nil, nil
	}
	return nil, fmt.Errorf("auto-restore: %w", err)
}

// resumeRestore downloads the -auto-restore backup again for a directory
// whose identity says the last start never booted it. Unlike a first
// start, continue_on_failure does not apply: starting empty here would
// serve an empty database and let -auto-backup overwrite the good backup.
func (n *Node) resumeRestore() (*backup.Restored, error) {
	c := n.cfg
	if c.AutoRestore == nil {
		return nil, fmt.Errorf("%w: this data directory's -auto-restore was interrupted before its boot: start it again with -auto-restore", ErrInvalidConfig)
	}
	n.log.Warn("the last start did not finish its auto-restore: restoring again")
	r, err := backup.Download(n.stopCtx, *c.AutoRestore, c.DataDir, nil, n.log.Named("restore"))
	if err != nil {
		return nil, fmt.Errorf("auto-restore (interrupted at the last start): %w", err)
	}
	return r, nil
}

// bootRestored waits until this single node leads and serves, then boots
// the cluster from the restored file as /boot does. Data requests are
// refused (not started) until it returns, so no client reads the empty
// database meanwhile.
func (n *Node) bootRestored(rep *replica.Replica, r *backup.Restored) error {
	ctx := n.stopCtx
	for {
		changed := n.life.Changed()
		st := n.life.State()
		if st.IsLeader() && st.ServesData() {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("auto-restore: stopped before the node could lead: %w", ctx.Err())
		case <-rep.Done():
			return errors.New("auto-restore: the replica stopped before the node could lead")
		case <-changed:
		}
	}
	if n.cfg.restoreBootHook != nil {
		if err := n.cfg.restoreBootHook(); err != nil {
			return err
		}
	}
	f, err := os.Open(r.Path)
	if err != nil {
		return fmt.Errorf("auto-restore: %w", err)
	}
	defer f.Close()
	if err := rep.BootHeld(ctx, f); err != nil {
		return fmt.Errorf("auto-restore: boot from the downloaded backup: %w", err)
	}
	n.log.Info("auto-restore complete: booted from the downloaded backup", zap.Int64("bytes", r.Size))
	return nil
}

// publishedState is the lifecycle state the gateway serves: while an
// -auto-restore may still boot the database, a ready node says it is
// recovering, so that /readyz and data requests never present the empty
// database that the restore is about to replace.
func (n *Node) publishedState() *lifecycle.State {
	st := n.life.State()
	if !n.restoring.Load() || st.Phase != lifecycle.Ready {
		return st
	}
	cp := *st
	cp.Phase = lifecycle.Recovering
	return &cp
}
