package backup

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	gzip "github.com/klauspost/compress/gzip"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/skiffdb/skiff/sm"
)

// Source takes backups: the replica (its Backup is /db/backup's path).
type Source interface {
	Backup(ctx context.Context, b *sm.Backup) (*sm.BackupResult, error)
}

// UploaderConfig configures an Uploader.
type UploaderConfig struct {
	Backup Config
	// Dir holds the staged files (the node's data directory): a crash
	// leaves files named stagePrefix*tmpSuffix, which New removes.
	Dir string
	// IsLeader reports whether this node leads now; only the leader
	// uploads.
	IsLeader func() bool
	// Changed returns a channel closed at the next change of leader or
	// phase (lifecycle's Changed); nil polls IsLeader at each interval.
	Changed func() <-chan struct{}
	// AppliedIndex is the node's last applied Raft index: unchanged since
	// the last upload means nothing to upload.
	AppliedIndex func() uint64
	// Store overrides the store Backup names (tests).
	Store  Store
	Logger *zap.Logger
}

// Staged file names under Dir.
const (
	stagePrefix = "auto-backup-"
	tmpSuffix   = ".tmp"
)

// sumPrefix marks Skiff's content sum in the stored metadata.
const sumPrefix = "sha256-dump:"

// Uploader is the backup actor. Run alone touches its state; the
// published stats are atomics.
type Uploader struct {
	cfg     UploaderConfig
	src     Source
	store   Store
	log     *zap.Logger
	stats   stats
	leading atomic.Bool

	// Run's state: what the storage holds as far as this leader knows.
	lastIndex uint64
	lastSum   string
	// ticked, when set (tests), hears of every interval Run handled.
	ticked chan<- bool
}

// New builds an Uploader taking backups from src.
func New(cfg UploaderConfig, src Source) (*Uploader, error) {
	if err := cfg.Backup.Validate(); err != nil {
		return nil, err
	}
	if cfg.Dir == "" || cfg.IsLeader == nil || cfg.AppliedIndex == nil || src == nil {
		return nil, fmt.Errorf("%w: uploader needs Dir, IsLeader, AppliedIndex and a source", ErrInvalidConfig)
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	st := cfg.Store
	if st == nil {
		var err error
		if st, err = NewStore(cfg.Backup.Storage, cfg.Backup.Timestamp); err != nil {
			return nil, err
		}
	}
	u := &Uploader{cfg: cfg, src: src, store: st, log: cfg.Logger}
	removeStaged(cfg.Dir, stagePrefix) // a crashed upload's files
	return u, nil
}

// removeStaged deletes the staged files (prefix*tmpSuffix*) in dir.
func removeStaged(dir, prefix string) {
	names, _ := filepath.Glob(filepath.Join(dir, prefix+"*"))
	for _, n := range names {
		if strings.Contains(filepath.Base(n), tmpSuffix) {
			_ = os.Remove(n)
		}
	}
}

// Run uploads every interval while this node leads, until ctx ends.
func (u *Uploader) Run(ctx context.Context) error {
	defer u.leading.Store(false)
	u.log.Info("auto-backup started", zap.String("destination", u.store.String()),
		zap.Duration("interval", u.cfg.Backup.Interval), zap.Bool("compress", !u.cfg.Backup.NoCompress))
	tick := time.NewTicker(u.cfg.Backup.Interval)
	defer tick.Stop()
	for {
		// Taken before leadership is read: a change in between closes it.
		changed := u.changed()
		u.observeLeader()
		select {
		case <-ctx.Done():
			u.log.Info("auto-backup stopped")
			return nil
		case <-changed:
		case <-tick.C:
			lead := u.observeLeader()
			if lead {
				u.uploadWhileLeading(ctx, changed)
			}
			if u.ticked != nil {
				select {
				case u.ticked <- lead:
				case <-ctx.Done():
				}
			}
		}
	}
}

// observeLeader publishes leadership. A node that starts leading forgets
// what it knew of the storage: another leader may have uploaded since, so
// the first upload compares with the stored sum.
func (u *Uploader) observeLeader() bool {
	lead := u.cfg.IsLeader()
	if lead && !u.leading.Load() {
		u.lastIndex, u.lastSum = 0, ""
		u.log.Info("leading: uploading backups", zap.String("destination", u.store.String()))
	} else if !lead && u.leading.Load() {
		u.log.Info("no longer leading: backups paused")
	}
	u.leading.Store(lead)
	return lead
}

func (u *Uploader) changed() <-chan struct{} {
	if u.cfg.Changed == nil {
		return nil
	}
	return u.cfg.Changed()
}

// uploadWhileLeading runs one interval's work, cancelled as soon as a
// change (from changed on) shows this node no longer leads: a deposed
// leader must not finish an upload that may overwrite a newer backup from
// the new leader.
func (u *Uploader) uploadWhileLeading(ctx context.Context, changed <-chan struct{}) {
	uctx, cancel := context.WithCancel(ctx)
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		for {
			select {
			case <-uctx.Done():
				return
			case <-changed:
				// Taken before leadership is read, as in Run.
				changed = u.changed()
				if !u.cfg.IsLeader() {
					u.log.Info("no longer leading: the upload in progress is abandoned")
					cancel()
					return
				}
			}
		}
	}()
	u.uploadOnce(uctx)
	cancel()
	<-watched
}

// uploadOnce runs one interval's work and records its outcome.
func (u *Uploader) uploadOnce(ctx context.Context) {
	err := u.upload(ctx)
	if err == nil || ctx.Err() != nil {
		return
	}
	u.stats.fail.Add(1)
	u.stats.failed(err, time.Now())
	u.log.Warn("auto-backup upload failed", zap.String("destination", u.store.String()), zap.Error(err))
}

// upload takes a backup and uploads it unless the storage already holds
// the same content. The content sum is a SHA-256 of the copy's SQL dump:
// unlike the file's bytes (page layout, free pages, header counters), it
// is the same on every node for the same data, so a new leader skips an
// unchanged database.
func (u *Uploader) upload(ctx context.Context) error {
	idx := u.cfg.AppliedIndex()
	if u.lastIndex != 0 && idx == u.lastIndex {
		u.stats.skipped.Add(1)
		return nil
	}
	raw, err := u.stage(ctx)
	if err != nil {
		return err
	}
	defer removeSQLite(raw)
	sum, err := dumpSum(ctx, raw)
	if err != nil {
		return err
	}
	if u.lastSum == "" {
		cur, err := u.store.CurrentSum(ctx)
		if err != nil {
			// Not fatal: uploading again is safe, only wasteful.
			u.stats.sumGetFail.Add(1)
			u.log.Warn("auto-backup: could not read the stored backup's sum", zap.Error(err))
		}
		u.lastSum = cur
	}
	if sum == u.lastSum {
		u.lastIndex = idx
		u.stats.skippedID.Add(1)
		u.stats.current(idx, sum)
		return nil
	}
	path := raw
	if !u.cfg.Backup.NoCompress {
		if path, err = u.compress(ctx, raw); err != nil {
			return err
		}
		defer os.Remove(path)
	}
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("open staged backup: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("stat staged backup: %w", err)
	}
	// Checked again last: the stages before took time, and the watch in
	// uploadWhileLeading only hears of changes lifecycle announces.
	if !u.cfg.IsLeader() {
		u.log.Info("no longer leading: the staged backup is not uploaded")
		return nil
	}
	start := time.Now()
	if err := u.store.Upload(ctx, f, fi.Size(), sum); err != nil {
		return err
	}
	d := time.Since(start)
	u.lastIndex, u.lastSum = idx, sum
	u.stats.uploaded(fi.Size(), d, time.Now(), idx, sum)
	u.log.Info("auto-backup uploaded", zap.String("destination", u.store.String()), zap.Int64("bytes", fi.Size()),
		zap.Duration("duration", d), zap.Uint64("index", idx))
	return nil
}

// stage writes a binary backup (the replica's pinned-state copy, as
// /db/backup) into a new file under Dir.
func (u *Uploader) stage(ctx context.Context) (string, error) {
	f, err := os.CreateTemp(u.cfg.Dir, stagePrefix+"*"+tmpSuffix)
	if err != nil {
		return "", fmt.Errorf("stage backup: %w", err)
	}
	path := f.Name()
	_, err = u.src.Backup(ctx, &sm.Backup{Ctx: ctx, W: f, Format: sm.BackupBinary, Vacuum: u.cfg.Backup.Vacuum})
	if cerr := f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("stage backup: %w", cerr)
	}
	if err != nil {
		_ = os.Remove(path)
		return "", fmt.Errorf("take backup: %w", err)
	}
	return path, nil
}

// compress gzips raw into a new staged file.
func (u *Uploader) compress(ctx context.Context, raw string) (string, error) {
	in, err := os.Open(raw)
	if err != nil {
		return "", fmt.Errorf("compress backup: %w", err)
	}
	defer in.Close()
	out, err := os.CreateTemp(u.cfg.Dir, stagePrefix+"*.gz"+tmpSuffix)
	if err != nil {
		return "", fmt.Errorf("compress backup: %w", err)
	}
	zw, _ := gzip.NewWriterLevel(out, gzip.BestSpeed)
	_, err = io.Copy(zw, ctxReader{ctx, in})
	if cerr := zw.Close(); err == nil {
		err = cerr
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(out.Name())
		return "", fmt.Errorf("compress backup: %w", err)
	}
	return out.Name(), nil
}

// dumpSum is the content sum of the SQLite file at path.
func dumpSum(ctx context.Context, path string) (string, error) {
	h := sha256.New()
	if err := sm.DumpFile(ctx, path, h); err != nil {
		return "", fmt.Errorf("sum backup: %w", err)
	}
	// DumpFile's read may leave SQLite's side files.
	for _, s := range []string{"-wal", "-shm"} {
		_ = os.Remove(path + s)
	}
	return sumPrefix + hex.EncodeToString(h.Sum(nil)), nil
}

// removeSQLite removes a database file and its side files.
func removeSQLite(path string) {
	for _, s := range []string{"", "-wal", "-shm", "-journal"} {
		_ = os.Remove(path + s)
	}
}

// Leading reports whether the uploader last saw this node leading.
func (u *Uploader) Leading() bool { return u.leading.Load() }

// Status is /status's auto_backups section.
func (u *Uploader) Status() any {
	m := u.stats.counters()
	u.stats.mu.Lock()
	m["last_index"] = u.stats.lastIndex
	m["last_sum"] = u.stats.lastSum
	u.stats.mu.Unlock()
	m["upload_destination"] = u.store.String()
	m["upload_interval"] = u.cfg.Backup.Interval.String()
	m["compress"] = !u.cfg.Backup.NoCompress
	m["vacuum"] = u.cfg.Backup.Vacuum
	m["timestamp"] = u.cfg.Backup.Timestamp
	m["leading"] = u.leading.Load()
	return m
}

// Vars is /debug/vars' uploader section: rqlite's counters.
func (u *Uploader) Vars() any { return u.stats.counters() }
