package sm

import (
	"bufio"
	"bytes"
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	dbsm "github.com/lni/dragonboat/v4/statemachine"
	"go.uber.org/zap"

	"github.com/skiffdb/skiff/sm/failpoint"
)

// bootPrefix names staged boot files; they end in tmpSuffix, so a crash
// leaves nothing that Open does not remove.
const bootPrefix = "boot-"

var bootName = regexp.MustCompile(`^boot-[0-9]+\.tmp$`)

// ErrBootFile is the result of a BOOT entry whose staged file is missing
// or unusable.
var ErrBootFile = errors.New("boot file unusable")

// StageBoot writes a SQLite file streamed from r into the replica's
// directory and prepares it to become the database: Skiff's tables are
// created in it and it is switched to WAL mode. It returns the staged
// file's base name, for a BOOT command. It touches no live handle, so it
// may run concurrently with anything.
func (s *StateMachine) StageBoot(r io.Reader, stop <-chan struct{}) (string, int64, error) {
	br := bufio.NewReaderSize(r, 256<<10)
	head, err := br.Peek(len(sqliteHeader))
	if err != nil || !bytes.Equal(head, sqliteHeader) {
		return "", 0, fmt.Errorf("%w: not a SQLite file", ErrInvalidSQLite)
	}
	f, err := os.CreateTemp(s.cfg.Dir, bootPrefix+"*"+tmpSuffix)
	if err != nil {
		return "", 0, fmt.Errorf("stage boot file: %w", err)
	}
	path := f.Name()
	fail := func(err error) (string, int64, error) {
		_ = f.Close()
		for _, suffix := range []string{"", "-wal", "-shm", "-journal"} {
			_ = os.Remove(path + suffix)
		}
		return "", 0, err
	}
	var n int64
	wb := &writebackFile{f: f}
	buf := make([]byte, 256<<10)
	for {
		select {
		case <-stop:
			return fail(dbsm.ErrSnapshotStopped)
		default:
		}
		k, rerr := br.Read(buf)
		if k > 0 {
			if _, err := wb.Write(buf[:k]); err != nil {
				return fail(fmt.Errorf("stage boot file: %w", err))
			}
			if n/backupLogEvery != (n+int64(k))/backupLogEvery {
				s.log.Info("boot upload progress", zap.Int64("bytes", n+int64(k)))
			}
			n += int64(k)
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			// The client's doing (a 400 it may never read), logged here
			// because the gateway logs only server errors.
			s.log.Warn("boot upload cut short; nothing staged", zap.Int64("bytes", n), zap.Error(rerr))
			return fail(fmt.Errorf("%w: %w", ErrUploadCut, rerr))
		}
	}
	// No fsync here: a crash before the BOOT entry is applied leaves a
	// staged file that Open removes, and boot's checkpoint, run with
	// synchronous=FULL, is the one fsync that makes the file durable
	// before the CURRENT switch.
	if err := f.Close(); err != nil {
		return fail(fmt.Errorf("close boot file: %w", err))
	}
	if err := prepareBootFile(path); err != nil {
		return fail(err)
	}
	s.log.Info("boot file staged", zap.String("file", filepath.Base(path)), zap.Int64("bytes", n))
	return filepath.Base(path), n, nil
}

var sqliteHeader = []byte("SQLite format 3\x00")

// prepareBootFile checks the file is a database and gives it Skiff's tables.
func prepareBootFile(path string) error {
	c, err := openWriter(path, false)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidSQLite, err)
	}
	defer c.Close()
	if _, err := queryInt64(c, "SELECT COUNT(*) FROM sqlite_master"); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidSQLite, err)
	}
	// A file with a valid header can still be damaged inside; booting it
	// would replicate the damage. quick_check reads every page.
	var problems []string
	if err := eachRow(context.Background(), c, "PRAGMA quick_check(5)", 1, func(v []driver.Value) error {
		if msg := str(v[0]); msg != "ok" {
			problems = append(problems, msg)
		}
		return nil
	}); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidSQLite, err)
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: quick_check: %s", ErrInvalidSQLite, strings.Join(problems, "; "))
	}
	var drops []string
	for _, t := range internalTables {
		drops = append(drops, "DROP TABLE IF EXISTS "+t)
	}
	for _, q := range append(drops, schema...) {
		if err := execRaw(c, q); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalidSQLite, err)
		}
	}
	return nil
}

// boot makes the staged file the database at index: the index is recorded
// in the file (fsynced) before the atomic CURRENT switch, so a crash leaves
// either the old database with its index or the new one with this one.
// The caller has committed the batch transaction so far.
func (s *StateMachine) boot(name string, index uint64) error {
	if !bootName.MatchString(name) {
		return fmt.Errorf("%w: bad name %q", ErrBootFile, name)
	}
	staged := filepath.Join(s.cfg.Dir, name)
	if _, err := os.Stat(staged); err != nil {
		return fmt.Errorf("%w: %w", ErrBootFile, err)
	}
	c, err := openWriter(staged, false)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrBootFile, err)
	}
	err = execRaw(c, "PRAGMA synchronous=FULL")
	if err == nil {
		err = execRaw(c, fmt.Sprintf("UPDATE %s SET applied = %d WHERE id = 1", metaTable, index))
	}
	if err == nil {
		// The cluster's members are the cluster's, not the upload's.
		err = copyNodes(s.w.c, c)
	}
	if err == nil {
		err = execRaw(c, "PRAGMA wal_checkpoint(TRUNCATE)")
	}
	if cerr := c.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		// The checkpoint syncs the file when it copied frames, which the
		// UPDATE guarantees; this fsync says so rather than relying on it,
		// and finds nothing left to write.
		err = fsyncPath(staged)
	}
	if err != nil {
		return fmt.Errorf("%w: %w", ErrBootFile, err)
	}
	if err := s.cfg.Failpoints.Inject(failpoint.SMBootInstall, s.stopc); err != nil {
		return fmt.Errorf("%w: %w", ErrBootFile, err)
	}
	return s.install(staged, index)
}

// install switches the live database to the file at path (whose applied
// index is index): rename to the next generation, switch CURRENT, reopen
// the handles, remove the old generation. RecoverFromSnapshot and boot
// share it.
func (s *StateMachine) install(path string, index uint64) error {
	gen := s.gen + 1
	final := filepath.Join(s.cfg.Dir, dbName(gen))
	// A received snapshot is written under its final name already
	// (RecoverFromSnapshot); the CURRENT switch's directory fsync makes
	// its name durable with CURRENT's.
	if path != final {
		for _, suffix := range []string{"-wal", "-shm"} {
			_ = os.Remove(path + suffix)
		}
		if err := os.Rename(path, final); err != nil {
			return fmt.Errorf("rename %s: %w", path, err)
		}
		if err := syncDir(s.cfg.Dir); err != nil {
			return err
		}
	}
	if err := checkApplied(final, index); err != nil {
		_ = os.Remove(final)
		return err
	}
	if err := writeCurrent(s.cfg.Dir, gen); err != nil {
		return err
	}
	w, readers, got, err := s.openHandles(final)
	if err != nil {
		return err
	}
	s.mu.Lock()
	oldW, oldReaders := s.w, s.readers.Swap(readers)
	s.w, s.path, s.gen = w, final, gen
	s.schemaDirty = true
	s.mu.Unlock()
	if oldReaders != nil {
		oldReaders.close()
	}
	if oldW != nil {
		_ = oldW.close()
	}
	s.held.retireAll()
	s.applied.Store(got)
	s.echoID, s.echoChanges = 0, 0
	s.notifyNodes()
	if err := removeStale(s.cfg.Dir, gen, false); err != nil {
		s.log.Warn("could not remove the replaced database", zap.Error(err))
	}
	return nil
}

// fsyncPath fsyncs the file at path. Only for files no SQLite connection of
// this process has open: closing the descriptor drops the process's POSIX
// locks on the file.
func fsyncPath(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("fsync %s: %w", filepath.Base(path), err)
	}
	return nil
}
