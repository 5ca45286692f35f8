package sm

import (
	"bufio"
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	sqlite3 "github.com/mattn/go-sqlite3"
	"go.uber.org/zap"
)

// BackupFormat selects what a Backup writes (API.md 1.10).
type BackupFormat int

// Backup formats.
const (
	// BackupBinary is a SQLite database file in WAL mode.
	BackupBinary BackupFormat = iota
	// BackupDelete is a SQLite database file in rollback (DELETE) mode.
	BackupDelete
	// BackupSQL is a SQL text dump.
	BackupSQL
)

// Backup is a Lookup query that streams a consistent copy of the database
// to W. Skiff's internal tables are left out: the copy is the client's
// database, loadable anywhere.
type Backup struct {
	Ctx    context.Context
	W      io.Writer
	Format BackupFormat
	// Tables limits a SQL dump to these tables (empty: all).
	Tables []string
	// Vacuum writes a VACUUMed (compacted) copy of a binary backup.
	Vacuum bool
	// CopyFirst copies the pinned state before writing it, so the pin
	// (and with it every checkpoint past it) is held only for the copy:
	// for a W much slower than the disk, such as a gzip stream. Without
	// it a binary backup is written straight from the database file.
	CopyFirst bool
}

// BackupResult reports what was written.
type BackupResult struct {
	Bytes int64
	// Direct: the pinned state was read from the database file itself
	// rather than through SQLite's backup API.
	Direct bool
	// Streamed: written from the database file as it was read, with only
	// the pages that leaving Skiff's tables out changes copied aside.
	Streamed bool
}

// ErrBackupWrite marks a failure writing to the client (as opposed to
// reading the database).
var ErrBackupWrite = errors.New("backup write failed")

// backupLogEvery is how many bytes pass between progress logs.
const backupLogEvery = 64 << 20

// backup serves a Backup from one pinned read transaction. A binary backup
// is streamed from the database file itself when it can be (streamPinned),
// holding the pin until the last byte. Otherwise the pinned state is copied
// into a private temporary file and the pin released before that file is
// streamed, so that a slow client holds up nothing but its own request;
// no lock of the state machine is held while streaming either way (a
// snapshot install or Close takes mu.Lock).
func (s *StateMachine) backup(b *Backup) (*BackupResult, error) {
	ctx := b.Ctx
	if ctx == nil {
		ctx = context.Background()
	}
	began := time.Now()
	src, live, stopc, err := s.pinForBackup()
	if err != nil {
		return nil, err
	}
	var unpinOnce sync.Once
	unpin := func() {
		unpinOnce.Do(func() {
			_ = execRaw(src, "ROLLBACK")
			_ = src.Close()
		})
	}
	defer unpin()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if stopc != nil {
		// The replica stopping ends a backup as its caller going away does.
		go func() {
			select {
			case <-stopc:
				cancel()
			case <-ctx.Done():
			}
		}()
	}
	// One checkpoint decides whether the database file holds the pinned
	// state, which both ways of reading the file need (copyPinnedFile).
	inFile := false
	if !s.cfg.BackupViaAPI && s.onBackupStep == nil {
		if s.onBackupPin != nil {
			s.onBackupPin("checkpoint")
		}
		if err := s.checkpointAll(live, "PASSIVE", backupCheckpointBusyMS); err != nil {
			s.log.Info("backup copies through SQLite: the database file cannot be read as pinned", zap.Error(err))
		} else {
			inFile = true
		}
	}
	cw := &countingWriter{w: b.W, log: s.log}
	if inFile && b.Format != BackupSQL && !b.Vacuum && !b.CopyFirst && !s.noBackupStream {
		streamed, err := s.streamPinned(ctx, src, live, b, cw)
		if err != nil {
			return nil, err
		}
		if streamed {
			s.log.Info("backup written", zap.Int64("bytes", cw.n), zap.Bool("streamed", true),
				zap.Duration("took", time.Since(began)))
			return &BackupResult{Bytes: cw.n, Direct: true, Streamed: true}, nil
		}
	}
	path, direct, err := s.copyForBackup(ctx, src, live, inFile)
	if err != nil {
		return nil, err
	}
	unpin()
	copied := time.Since(began)
	defer func() {
		for _, suffix := range []string{"", "-wal", "-shm", "-journal"} {
			_ = os.Remove(path + suffix)
		}
	}()
	if b.Format == BackupSQL {
		err = dumpCopy(ctx, path, bufio.NewWriterSize(cw, 256<<10), b.Tables)
	} else {
		err = streamCopy(path, cw, b)
	}
	if err != nil {
		return nil, err
	}
	s.log.Info("backup written", zap.Int64("bytes", cw.n), zap.Bool("direct", direct),
		zap.Duration("copy", copied), zap.Duration("took", time.Since(began)))
	return &BackupResult{Bytes: cw.n, Direct: direct}, nil
}

// copyForBackup copies the state pinned by src's read transaction (its
// database is the file at live) into a new temporary file and returns its
// path: from the file itself when inFile (a checkpoint left the pinned
// state there), otherwise through SQLite's backup API on that private
// connection, which Close and a snapshot install (mu.Lock) never touch,
// and whose open file stays readable even if an install replaces the
// database.
func (s *StateMachine) copyForBackup(ctx context.Context, src *sqlite3.SQLiteConn, live string, inFile bool) (string, bool, error) {
	tmp, err := os.CreateTemp(s.cfg.Dir, "backup-*"+tmpSuffix)
	if err != nil {
		return "", false, fmt.Errorf("create backup file: %w", err)
	}
	path := tmp.Name()
	_ = tmp.Close()
	direct := false
	if inFile && ctx.Err() == nil {
		direct, err = s.copyPinnedFile(src, live, path, ctx.Done())
		if err != nil && ctx.Err() == nil {
			s.log.Info("backup copies through SQLite: the database file cannot be read as pinned", zap.Error(err))
		}
	}
	if !direct {
		// A copy cut half-way leaves bytes SQLite would read as a damaged
		// database. Stepped, so ctx is checked between steps. Steps that
		// share the pinned read transaction are never restarted by the
		// writer's commits (SQLite restarts a step-wise backup only when
		// the source changes between steps as its connection sees it), as
		// in saveSnapshot.
		if err = os.Truncate(path, 0); err == nil {
			err = backupTo(src, path, ctx.Done(), backupPagesPerStep, s.onBackupStep)
		}
	}
	if err != nil {
		for _, suffix := range []string{"", "-wal", "-shm", "-journal"} {
			_ = os.Remove(path + suffix)
		}
		if ctx.Err() != nil {
			return "", false, fmt.Errorf("backup copy: %w", ctx.Err())
		}
		return "", false, err
	}
	return path, direct, nil
}

// pinForBackup opens a connection of the backup's own on the current
// database and pins a read transaction there, under mu.RLock (the path is
// swapped under mu.Lock). It also returns Open's stop channel.
func (s *StateMachine) pinForBackup() (*sqlite3.SQLiteConn, string, <-chan struct{}, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed || s.path == "" {
		return nil, "", nil, ErrClosed
	}
	src, err := openReader(s.path, s.cfg.ForeignKeys, false)
	if err != nil {
		return nil, "", nil, err
	}
	if err := execRaw(src, "BEGIN"); err != nil {
		_ = src.Close()
		return nil, "", nil, fmt.Errorf("pin read transaction: %w", err)
	}
	// The first read starts the WAL read transaction that pins the state.
	if _, err := queryInt64(src, "SELECT COUNT(*) FROM sqlite_master"); err != nil {
		_ = src.Close()
		return nil, "", nil, fmt.Errorf("pin read transaction: %w", err)
	}
	return src, s.path, s.stopc, nil
}

// backupCheckpointBusyMS bounds the wait of a backup's checkpoint: the
// backup then copies through SQLite instead.
const backupCheckpointBusyMS = 100

// copyPinnedFile copies the pinned state of src (whose database is the file
// at live) into path by reading the database file itself. The caller's
// PASSIVE checkpoint (backup) must have backfilled every WAL frame: a
// checkpoint never copies frames a reader's snapshot does not include, so
// then the last frame is the pinned one, the file's first
// page_count*page_size bytes are the pinned state, and no later checkpoint
// changes them while src's read transaction stays open (the same argument
// as the snapshot's, docs/recovery.md). Unlike PrepareSnapshot, backup runs
// beside Update, so a commit between the pin and the checkpoint leaves
// frames it cannot copy, and the copy then goes through SQLite's backup
// API instead.
func (s *StateMachine) copyPinnedFile(src *sqlite3.SQLiteConn, live, path string, stop <-chan struct{}) (bool, error) {
	pages, err := queryInt64(src, "PRAGMA page_count")
	if err != nil {
		return false, fmt.Errorf("page count: %w", err)
	}
	pageSize, err := queryInt64(src, "PRAGMA page_size")
	if err != nil {
		return false, fmt.Errorf("page size: %w", err)
	}
	// The live file is read through the descriptor SaveSnapshot uses:
	// closing a descriptor of our own would drop SQLite's locks on it.
	f, release, err := s.held.acquire(live)
	if err != nil {
		return false, err
	}
	defer release()
	if s.onBackupPin != nil {
		s.onBackupPin("copy")
	}
	size := pages * pageSize
	if st, err := f.Stat(); err != nil || st.Size() < size {
		return false, fmt.Errorf("%w: %s shorter than the pinned state (%d bytes)", ErrStorage, live, size)
	}
	out, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return false, fmt.Errorf("open backup file: %w", err)
	}
	_, err = copyRange(out, f, size, stop)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return false, fmt.Errorf("copy pinned file: %w", err)
	}
	return true, nil
}

// copyRange copies the first n bytes of src into dst at the same offsets,
// in the kernel (copy_file_range with explicit offsets, so src's shared
// descriptor offset is untouched), falling back to pread/write.
func copyRange(dst, src *os.File, n int64, stop <-chan struct{}) (int64, error) {
	const step = 64 << 20
	var done int64
	for done < n {
		select {
		case <-stop:
			return done, fmt.Errorf("backup copy: %w", context.Canceled)
		default:
		}
		k, err := copyFileRange(dst, src, done, min(step, n-done))
		if err != nil {
			return done, err
		}
		if k == 0 {
			return done, fmt.Errorf("%w: short read at %d of %d bytes", ErrStorage, done, n)
		}
		done += k
	}
	return done, nil
}

// dumpCopy writes a SQL dump of the private copy at path.
func dumpCopy(ctx context.Context, path string, w *bufio.Writer, tables []string) error {
	dc, err := (&sqlite3.SQLiteDriver{}).Open("file:" + uriPath(path) + "?_synchronous=OFF")
	if err != nil {
		return fmt.Errorf("open backup copy: %w", err)
	}
	c := dc.(*sqlite3.SQLiteConn)
	defer c.Close()
	return dumpSQL(ctx, c, w, tables)
}

// streamCopy removes Skiff's tables from the private copy at path, applies
// the requested journal mode and vacuum, and streams the file.
func streamCopy(path string, w io.Writer, b *Backup) error {
	if err := scrubCopy(path, b); err != nil {
		return err
	}
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("open backup file: %w", err)
	}
	defer f.Close()
	if _, err := io.Copy(w, f); err != nil {
		return fmt.Errorf("%w: %w", ErrBackupWrite, err)
	}
	return nil
}

// scrubCopy drops Skiff's internal tables from a copy and applies the
// requested journal mode and vacuum.
func scrubCopy(path string, b *Backup) error {
	dc, err := (&sqlite3.SQLiteDriver{}).Open("file:" + uriPath(path) + "?_synchronous=OFF")
	if err != nil {
		return fmt.Errorf("open backup copy: %w", err)
	}
	c := dc.(*sqlite3.SQLiteConn)
	defer c.Close()
	for _, t := range internalTables {
		if err := execRaw(c, "DROP TABLE IF EXISTS "+t); err != nil {
			return fmt.Errorf("scrub backup copy: %w", err)
		}
	}
	mode := "WAL"
	if b.Format == BackupDelete {
		mode = "DELETE"
	}
	if err := execRaw(c, "PRAGMA journal_mode="+mode); err != nil {
		return fmt.Errorf("set journal mode: %w", err)
	}
	if b.Vacuum {
		if err := execRaw(c, "VACUUM"); err != nil {
			return fmt.Errorf("vacuum backup copy: %w", err)
		}
	}
	// Fold the WAL into the file so the copy is one self-contained file.
	if err := execRaw(c, "PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
		return fmt.Errorf("checkpoint backup copy: %w", err)
	}
	return nil
}

type countingWriter struct {
	w       io.Writer
	n, last int64
	log     *zap.Logger
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	if c.n-c.last >= backupLogEvery {
		c.last = c.n
		c.log.Info("backup progress", zap.Int64("bytes", c.n))
	}
	if err != nil {
		return n, fmt.Errorf("%w: %w", ErrBackupWrite, err)
	}
	return n, nil
}

// dumpSQL writes a SQL text dump like sqlite3's .dump: schema and rows of
// each client table, then indexes, triggers and views.
func dumpSQL(ctx context.Context, c *sqlite3.SQLiteConn, w *bufio.Writer, only []string) error {
	want := map[string]bool{}
	for _, t := range only {
		want[strings.ToLower(t)] = true
	}
	keep := func(tbl string) bool {
		l := strings.ToLower(tbl)
		return !strings.HasPrefix(l, internalPrefix) && (len(want) == 0 || want[l])
	}
	type entry struct{ typ, name, tbl, sql string }
	var schema []entry
	if err := eachRow(ctx, c, `SELECT type, name, tbl_name, sql FROM sqlite_master WHERE sql NOT NULL ORDER BY rowid`, 4, func(v []driver.Value) error {
		schema = append(schema, entry{str(v[0]), str(v[1]), str(v[2]), str(v[3])})
		return nil
	}); err != nil {
		return err
	}
	kinds, err := tableKinds(ctx, c)
	if err != nil {
		return err
	}
	if _, err := w.WriteString("PRAGMA foreign_keys=OFF;\nBEGIN TRANSACTION;\n"); err != nil {
		return fmt.Errorf("%w: %w", ErrBackupWrite, err)
	}
	hasSequence := false
	for _, e := range schema {
		if e.typ != "table" || !keep(e.tbl) {
			continue
		}
		if e.name == "sqlite_sequence" {
			hasSequence = true
			continue
		}
		if strings.HasPrefix(e.name, "sqlite_") {
			continue
		}
		// A virtual table (full-text search, R*Tree) keeps its data in
		// shadow tables, which its CREATE VIRTUAL TABLE makes again (with
		// a module's first rows) just before. Their rows are the virtual
		// table's exact state, rowids, contentless and external-content
		// indexes included; the virtual table's own rows are derived.
		stmt := e.sql + ";\n"
		if kinds[e.name] == "shadow" {
			stmt = "DELETE FROM " + quoteIdent(e.name) + ";\n"
		}
		if _, err := w.WriteString(stmt); err != nil {
			return fmt.Errorf("%w: %w", ErrBackupWrite, err)
		}
		if kinds[e.name] == "virtual" {
			continue
		}
		if err := dumpRows(ctx, c, w, e.name); err != nil {
			return err
		}
	}
	if hasSequence {
		if _, err := w.WriteString("DELETE FROM sqlite_sequence;\n"); err != nil {
			return fmt.Errorf("%w: %w", ErrBackupWrite, err)
		}
		if err := dumpRows(ctx, c, w, "sqlite_sequence"); err != nil {
			return err
		}
	}
	for _, e := range schema {
		if e.typ == "table" || !keep(e.tbl) {
			continue
		}
		if _, err := w.WriteString(e.sql + ";\n"); err != nil {
			return fmt.Errorf("%w: %w", ErrBackupWrite, err)
		}
	}
	if _, err := w.WriteString("COMMIT;\n"); err != nil {
		return fmt.Errorf("%w: %w", ErrBackupWrite, err)
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("%w: %w", ErrBackupWrite, err)
	}
	return nil
}

// tableKinds maps each table of the main schema to its kind in
// pragma_table_list: table, view, virtual or shadow (a virtual table's
// storage).
func tableKinds(ctx context.Context, c *sqlite3.SQLiteConn) (map[string]string, error) {
	kinds := map[string]string{}
	err := eachRow(ctx, c, `SELECT name, type FROM pragma_table_list WHERE schema = 'main'`, 2, func(v []driver.Value) error {
		kinds[str(v[0])] = str(v[1])
		return nil
	})
	return kinds, err
}

// dumpRows writes one INSERT per row; SQLite's quote() renders each value
// as the literal that reads back as the same value and storage class.
func dumpRows(ctx context.Context, c *sqlite3.SQLiteConn, w *bufio.Writer, table string) error {
	var cols []string
	if err := eachRow(ctx, c, "SELECT name FROM pragma_table_info("+quoteLiteral(table)+")", 1, func(v []driver.Value) error {
		cols = append(cols, "quote("+quoteIdent(str(v[0]))+")")
		return nil
	}); err != nil {
		return err
	}
	if len(cols) == 0 {
		return nil
	}
	prefix := "INSERT INTO " + quoteIdent(table) + " VALUES("
	q := "SELECT " + strings.Join(cols, "||','||") + " FROM " + quoteIdent(table)
	return eachRow(ctx, c, q, 1, func(v []driver.Value) error {
		if _, err := w.WriteString(prefix + str(v[0]) + ");\n"); err != nil {
			return fmt.Errorf("%w: %w", ErrBackupWrite, err)
		}
		return nil
	})
}

func eachRow(ctx context.Context, c *sqlite3.SQLiteConn, q string, n int, f func([]driver.Value) error) error {
	rows, err := c.QueryContext(ctx, q, nil)
	if err != nil {
		return fmt.Errorf("dump %q: %w", q, err)
	}
	defer rows.Close()
	dest := make([]driver.Value, n)
	for {
		err := rows.Next(dest)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("dump %q: %w", q, err)
		}
		if err := f(dest); err != nil {
			return err
		}
	}
}

func str(v driver.Value) string {
	switch x := v.(type) {
	case string:
		return x
	case []byte:
		return string(x)
	}
	return ""
}

func quoteIdent(s string) string   { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }
func quoteLiteral(s string) string { return `'` + strings.ReplaceAll(s, `'`, `''`) + `'` }

// ErrInvalidSQLite is returned by DumpFile for a file that is not a usable
// SQLite database.
var ErrInvalidSQLite = errors.New("invalid SQLite data")

// DumpFile writes a SQL dump of the SQLite database at path (a file a
// client uploaded, not the replica's): how a binary load becomes
// statements that every replica applies.
func DumpFile(ctx context.Context, path string, w io.Writer) error {
	dc, err := (&sqlite3.SQLiteDriver{}).Open("file:" + uriPath(path) + "?_query_only=1")
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidSQLite, err)
	}
	c := dc.(*sqlite3.SQLiteConn)
	defer c.Close()
	if err := execRaw(c, "BEGIN"); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidSQLite, err)
	}
	defer execRaw(c, "ROLLBACK") //nolint:errcheck // read only
	if _, err := queryInt64(c, "SELECT COUNT(*) FROM sqlite_master"); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidSQLite, err)
	}
	return dumpSQL(ctx, c, bufio.NewWriterSize(w, 256<<10), nil)
}

// Checkpoint is a Lookup query that folds SQLite's WAL into the database
// file (rqlite's /reap).
type Checkpoint struct{}

// CheckpointResult reports how many WAL frames were checkpointed.
type CheckpointResult struct{ Frames int64 }

// liveCheckpoint checkpoints the live database under mu.RLock, so that
// an install or Close does not swap it meanwhile.
func (s *StateMachine) liveCheckpoint() (*CheckpointResult, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed || s.path == "" {
		return nil, ErrClosed
	}
	return s.checkpoint()
}

// checkpoint runs a PASSIVE checkpoint from a connection of its own: it
// copies what no reader still needs and never blocks the writer.
func (s *StateMachine) checkpoint() (*CheckpointResult, error) {
	s.checkpointMu.Lock()
	defer s.checkpointMu.Unlock()
	c, err := openWriter(s.path, s.cfg.ForeignKeys)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	var frames int64
	err = eachRow(context.Background(), c, "PRAGMA wal_checkpoint(PASSIVE)", 3, func(v []driver.Value) error {
		frames, _ = v[2].(int64)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	return &CheckpointResult{Frames: frames}, nil
}

// preadCopy copies up to n bytes at offset off of src to the same offset
// of dst through a buffer, by positioned reads and writes.
func preadCopy(dst, src *os.File, off, n int64) (int64, error) {
	buf := make([]byte, min(n, 1<<20))
	var done int64
	for done < n {
		k, err := src.ReadAt(buf[:min(int64(len(buf)), n-done)], off+done)
		if k > 0 {
			if _, werr := dst.WriteAt(buf[:k], off+done); werr != nil {
				return done, werr
			}
			done += int64(k)
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				return done, nil
			}
			return done, err
		}
	}
	return done, nil
}
