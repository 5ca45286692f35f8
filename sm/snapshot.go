package sm

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"math"
	"os"
	"path/filepath"
	"time"

	dbsm "github.com/lni/dragonboat/v4/statemachine"
	sqlite3 "github.com/mattn/go-sqlite3"
	"go.uber.org/zap"

	"github.com/skiffdb/skiff/sm/failpoint"
)

// Snapshot stream format (version 1), little-endian:
//
//	magic "SKIFFSN1" | version u32 | applied index u64 | size u64 |
//	size bytes of SQLite database | CRC-32C of those bytes u32
//
// The index travels in the header as well as inside the file so that the
// receiver can check one against the other before switching.
const (
	snapshotMagic   = "SKIFFSN1"
	snapshotVersion = 1
	headerSize      = len(snapshotMagic) + 4 + 8 + 8
	// backupPagesPerStep bounds how long one backup step holds SQLite's
	// mutexes and how often stopc is checked.
	backupPagesPerStep = 1024
	// progressEvery is how many bytes pass between progress events.
	progressEvery = 8 << 20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// snapshotCtx pins a read transaction: the state PrepareSnapshot saw.
type snapshotCtx struct {
	conn    *sqlite3.SQLiteConn
	applied uint64
	// direct: the database file itself holds exactly the pinned state in
	// its first size bytes, and stays so while conn's read transaction is
	// open (docs/recovery.md, "Streaming the pinned file"); file reads it.
	direct  bool
	size    int64
	file    *os.File
	release func()
	// pinned is when PrepareSnapshot pinned the state (for the log).
	pinned time.Time
}

// close ends the read transaction and frees the context's handles.
func (sc *snapshotCtx) close() {
	if sc.release != nil {
		sc.release()
	}
	_ = execRaw(sc.conn, "ROLLBACK")
	_ = sc.conn.Close()
}

// snapshotCheckpointBusyMS bounds how long PrepareSnapshot's checkpoint
// waits for readers of older states; Update waits for PrepareSnapshot, so
// on a timeout the snapshot is copied aside instead.
const snapshotCheckpointBusyMS = 1000

// PrepareSnapshot pins a read transaction on a connection of its own, so
// that SaveSnapshot streams exactly this point in time while Update goes
// on. It runs with Update excluded, so the pinned state matches the index
// Dragonboat records for the snapshot. It then checkpoints the whole WAL
// into the database file: from then on the file's pages are the pinned
// state and no checkpoint can change them while the read transaction is
// open, so SaveSnapshot streams the file itself, without a copy.
func (s *StateMachine) PrepareSnapshot() (interface{}, error) {
	s.mu.RLock()
	path, closed := s.path, s.closed
	s.mu.RUnlock()
	if closed || path == "" {
		return nil, ErrClosed
	}
	c, err := openReader(path, s.cfg.ForeignKeys, false)
	if err != nil {
		return nil, err
	}
	if err := execRaw(c, "BEGIN"); err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("pin read transaction: %w", err)
	}
	// The first read starts the WAL read transaction that pins the snapshot.
	applied, err := queryInt64(c, "SELECT applied FROM "+metaTable+" WHERE id = 1")
	if err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("read applied index: %w", err)
	}
	sc := &snapshotCtx{conn: c, applied: uint64(applied), pinned: time.Now()}
	if s.cfg.SnapshotViaCopy {
		return sc, nil
	}
	if err := s.pinFile(sc, path); err != nil {
		s.log.Warn("snapshot will be copied aside: the database file cannot be streamed", zap.Error(err))
		sc.direct = false
	}
	return sc, nil
}

// pinFile checkpoints the WAL fully and sets sc up to stream the database
// file. Update is excluded while it runs, so the WAL's last frame is the
// pinned state's, and a complete checkpoint leaves the file holding it.
func (s *StateMachine) pinFile(sc *snapshotCtx, path string) error {
	if err := s.checkpointAll(path, "FULL", snapshotCheckpointBusyMS); err != nil {
		return err
	}
	// page_count on the pinned connection is the pinned state's size.
	pages, err := queryInt64(sc.conn, "PRAGMA page_count")
	if err != nil {
		return fmt.Errorf("page count: %w", err)
	}
	pageSize, err := queryInt64(sc.conn, "PRAGMA page_size")
	if err != nil {
		return fmt.Errorf("page size: %w", err)
	}
	f, release, err := s.held.acquire(path)
	if err != nil {
		return err
	}
	st, err := f.Stat()
	if err != nil {
		release()
		return fmt.Errorf("stat %s: %w", path, err)
	}
	size := pages * pageSize
	if st.Size() < size {
		release()
		return fmt.Errorf("%w: %s holds %d bytes, the pinned state %d", ErrStorage, path, st.Size(), size)
	}
	sc.direct, sc.size, sc.file, sc.release = true, size, f, release
	return nil
}

// SaveSnapshot streams the pinned state: an online backup from the pinned
// connection into a temporary file (so no whole database is ever held in
// memory), then the file, framed and checksummed. Errors other than a broken
// stream or a stop are turned into ErrSnapshotAborted: any other error would
// make Dragonboat stop this (healthy) node because one transfer failed.
//
// Dragonboat's sentinels are returned bare: Dragonboat tests for them with
// cockroachdb/errors v1.9, whose Is does not look inside an error that
// wraps two (fmt.Errorf with two %w), so "%w: %w" of ErrSnapshotAborted and
// a cause crashed the leader when one transfer failed (found by the
// sm/snapshot-send failpoint). The cause is logged instead.
func (s *StateMachine) SaveSnapshot(ctx interface{}, w io.Writer, stopc <-chan struct{}) error {
	sc, ok := ctx.(*snapshotCtx)
	if !ok {
		s.log.Error("snapshot send failed", zap.String("reason", fmt.Sprintf("snapshot context %T", ctx)))
		return dbsm.ErrSnapshotAborted
	}
	defer sc.close()
	return s.sendEnded(s.saveSnapshot(sc, w, stopc))
}

// sendEnded maps a send's error to the bare sentinel Dragonboat tolerates.
func (s *StateMachine) sendEnded(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, dbsm.ErrSnapshotStreaming):
		s.log.Warn("snapshot send ended: the stream broke", zap.Error(err))
		return dbsm.ErrSnapshotStreaming
	case errors.Is(err, dbsm.ErrSnapshotStopped):
		s.log.Warn("snapshot send ended: stopped", zap.Error(err))
		return dbsm.ErrSnapshotStopped
	case errors.Is(err, dbsm.ErrSnapshotAborted):
		s.log.Warn("snapshot send aborted", zap.Error(err))
		return dbsm.ErrSnapshotAborted
	default:
		s.log.Error("snapshot send failed", zap.Error(err))
		return dbsm.ErrSnapshotAborted
	}
}

func (s *StateMachine) saveSnapshot(sc *snapshotCtx, w io.Writer, stopc <-chan struct{}) error {
	if sc.direct {
		return s.streamSnapshot(sc, io.NewSectionReader(sc.file, 0, sc.size), sc.size, w, stopc)
	}
	tmp, err := os.CreateTemp(s.cfg.Dir, "snap-*"+tmpSuffix)
	if err != nil {
		return fmt.Errorf("create snapshot file: %w", err)
	}
	tmpPath := tmp.Name()
	_ = tmp.Close()
	defer os.Remove(tmpPath)
	if err := backupTo(sc.conn, tmpPath, stopc, backupPagesPerStep, nil); err != nil {
		return err
	}
	f, err := os.Open(tmpPath)
	if err != nil {
		return fmt.Errorf("open snapshot file: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("stat snapshot file: %w", err)
	}
	return s.streamSnapshot(sc, f, st.Size(), w, stopc)
}

// streamSnapshot frames size bytes of the pinned state read from f.
func (s *StateMachine) streamSnapshot(sc *snapshotCtx, f io.Reader, size int64, w io.Writer, stopc <-chan struct{}) error {
	var hdr [headerSize]byte
	copy(hdr[:], snapshotMagic)
	binary.LittleEndian.PutUint32(hdr[8:], snapshotVersion)
	binary.LittleEndian.PutUint64(hdr[12:], sc.applied)
	binary.LittleEndian.PutUint64(hdr[20:], uint64(size))
	if _, err := w.Write(hdr[:]); err != nil {
		return err
	}
	crc := crc32.New(castagnoli)
	report := func(n int64) {
		s.cfg.Notify(Event{Kind: EventSnapshotSendProgress, Index: sc.applied, Bytes: n, Total: size})
	}
	chunk := func() error {
		if err := s.cfg.Failpoints.Inject(failpoint.SMSnapshotSend, stopc); err != nil {
			return fmt.Errorf("%w: %w", dbsm.ErrSnapshotAborted, err)
		}
		return nil
	}
	if _, err := copyProgress(io.MultiWriter(w, crc), f, size, stopc, chunk, report); err != nil {
		return err
	}
	var tail [4]byte
	binary.LittleEndian.PutUint32(tail[:], crc.Sum32())
	if _, err := w.Write(tail[:]); err != nil {
		return err
	}
	took := time.Since(sc.pinned)
	s.log.Info("snapshot sent", zap.Uint64("applied_index", sc.applied), zap.Int64("bytes", size), zap.Bool("direct", sc.direct),
		zap.Duration("took", took))
	s.cfg.Notify(Event{Kind: EventSnapshotSent, Index: sc.applied, Bytes: size, Total: size})
	return nil
}

// backupTo copies src's database, as of its open read transaction, into a
// new file at path. sqlite3_backup_step uses the source connection's read
// transaction when it has one, so every step sees the same state;
// pagesPerStep -1 copies everything in one step. between, if not nil, runs
// after each step that did not finish (a test hook).
func backupTo(src *sqlite3.SQLiteConn, path string, stopc <-chan struct{}, pagesPerStep int, between func()) error {
	dc, err := (&sqlite3.SQLiteDriver{}).Open(fmt.Sprintf("file:%s?_journal_mode=OFF&_synchronous=OFF", uriPath(path)))
	if err != nil {
		return fmt.Errorf("open snapshot file: %w", err)
	}
	dst := dc.(*sqlite3.SQLiteConn)
	defer dst.Close()
	b, err := dst.Backup("main", src, "main")
	if err != nil {
		return fmt.Errorf("start backup: %w", err)
	}
	for {
		select {
		case <-stopc:
			_ = b.Finish()
			return dbsm.ErrSnapshotStopped
		default:
		}
		done, err := b.Step(pagesPerStep)
		if err != nil {
			_ = b.Finish()
			return fmt.Errorf("backup step: %w", err)
		}
		if done {
			break
		}
		if between != nil {
			between()
		}
	}
	if err := b.Finish(); err != nil {
		return fmt.Errorf("finish backup: %w", err)
	}
	return nil
}

// copyProgress copies exactly n bytes, checking stopc and reporting progress.
// before, if not nil, runs before each chunk and may end the copy.
func copyProgress(dst io.Writer, src io.Reader, n int64, stopc <-chan struct{}, before func() error, report func(int64)) (int64, error) {
	buf := make([]byte, 256<<10)
	var done, lastReport int64
	for done < n {
		if before != nil {
			if err := before(); err != nil {
				return done, err
			}
		}
		select {
		case <-stopc:
			return done, dbsm.ErrSnapshotStopped
		default:
		}
		chunk := buf
		if rem := n - done; rem < int64(len(chunk)) {
			chunk = chunk[:rem]
		}
		k, err := io.ReadFull(src, chunk)
		if k > 0 {
			if _, werr := dst.Write(chunk[:k]); werr != nil {
				return done, werr
			}
			done += int64(k)
		}
		if err != nil {
			return done, fmt.Errorf("%w: short stream after %d of %d bytes: %w", ErrSnapshotFormat, done, n, err)
		}
		if done-lastReport >= progressEvery || done == n {
			report(done)
			lastReport = done
		}
	}
	return done, nil
}

// RecoverFromSnapshot installs a received database: it is written under the
// next generation's name, checksummed, fsynced, checked, and only then made
// live by an atomic CURRENT switch. A crash before the switch leaves the old
// database live and Dragonboat retries the install at restart; a crash
// after it leaves the new one live with the snapshot's index.
func (s *StateMachine) RecoverFromSnapshot(r io.Reader, stopc <-chan struct{}) error {
	err := s.recoverFromSnapshot(r, stopc)
	if errors.Is(err, dbsm.ErrSnapshotStopped) {
		return dbsm.ErrSnapshotStopped // bare: see SaveSnapshot
	}
	if err != nil {
		s.fault(err)
	}
	return err
}

func (s *StateMachine) recoverFromSnapshot(r io.Reader, stopc <-chan struct{}) error {
	br := bufio.NewReaderSize(r, 256<<10)
	var hdr [headerSize]byte
	if _, err := io.ReadFull(br, hdr[:]); err != nil {
		return fmt.Errorf("%w: header: %w", ErrSnapshotFormat, err)
	}
	applied, size, err := parseStreamHeader(hdr[:])
	if err != nil {
		return err
	}
	s.cfg.Notify(Event{Kind: EventSnapshotInstallBegun, Index: applied, Total: size})
	s.log.Info("installing snapshot", zap.Uint64("applied_index", applied), zap.Int64("bytes", size))
	if tapped, ok := s.cfg.Tap.claim(applied, size, stopc); ok {
		// Checked before the install so that a bad copy costs only a
		// fall-back to writing the stream here.
		err := checkApplied(tapped.path, applied)
		if err == nil {
			return s.installTapped(tapped)
		}
		s.log.Warn("tapped snapshot copy unusable; writing the stream", zap.Error(err))
		_ = os.Remove(tapped.path)
	}

	// Straight into the next generation's file: CURRENT names the live
	// one until install switches it, and Open removes any other
	// generation, so a crash mid-write leaves nothing live or visible.
	// Leftovers of an earlier failed attempt go first: a stale -wal next
	// to the new main file would be read as its WAL.
	next := filepath.Join(s.cfg.Dir, dbName(s.gen+1))
	removeDB := func() {
		for _, suffix := range []string{"", "-wal", "-shm"} {
			_ = os.Remove(next + suffix)
		}
	}
	removeDB()
	chunk := func() error { return s.cfg.Failpoints.Inject(failpoint.SMSnapshotInstall, stopc) }
	began := time.Now()
	fsync, err := receiveFile(br, next, size, !s.noWriteback, stopc, chunk, func(n int64) {
		s.cfg.Notify(Event{Kind: EventSnapshotInstallProgress, Index: applied, Bytes: n, Total: size})
	})
	if err != nil {
		removeDB()
		return err
	}
	written := time.Now()
	// No clean-up after a failed install: it may fail after the switch,
	// when next is the live database (install removes it itself when it
	// fails before).
	if err := s.install(next, applied); err != nil {
		return err
	}
	// The stages, for issue 17's figures: receive and write (with the
	// CRC) then fsync, then the check, CURRENT switch and reopen.
	return s.installDone(zap.Bool("tapped", false), zap.Duration("write", written.Sub(began)-fsync),
		zap.Duration("fsync", fsync), zap.Duration("switch", time.Since(written)))
}

// installDone reports an install that switched to the new database, with
// its stages' figures.
func (s *StateMachine) installDone(stages ...zap.Field) error {
	got := s.applied.Load()
	s.log.Info("snapshot installed", append([]zap.Field{zap.Uint64("applied_index", got), zap.String("path", s.path)}, stages...)...)
	// The sink first: it records the range it never captured before the
	// applied index published with the event reaches got, so that a CDC
	// peer never vouches for indexes up to got that it does not hold.
	s.cap.installed(got)
	s.cfg.Notify(Event{Kind: EventSnapshotInstallDone, Index: got})
	// The snapshot's mark: what the sink acknowledged before it.
	return s.reportHighWater()
}

// parseStreamHeader checks a stream header and returns the index and size
// it names.
func parseStreamHeader(hdr []byte) (uint64, int64, error) {
	if string(hdr[:8]) != snapshotMagic || binary.LittleEndian.Uint32(hdr[8:]) != snapshotVersion {
		return 0, 0, fmt.Errorf("%w: bad magic or version", ErrSnapshotFormat)
	}
	size := binary.LittleEndian.Uint64(hdr[20:])
	if size > math.MaxInt64 {
		return 0, 0, fmt.Errorf("%w: size %d", ErrSnapshotFormat, size)
	}
	return binary.LittleEndian.Uint64(hdr[12:]), int64(size), nil
}

// installTapped installs a database the receive tap wrote while the stream
// arrived (receivetap.go): the same checks and switch as a copy written
// here. The rest of Dragonboat's stream is left unread.
func (s *StateMachine) installTapped(t tapResult) error {
	// Written whole already: the install's progress is complete.
	s.cfg.Notify(Event{Kind: EventSnapshotInstallProgress, Index: t.index, Bytes: t.size, Total: t.size})
	began := time.Now()
	if err := s.install(t.path, t.index); err != nil {
		_ = os.Remove(t.path)
		return err
	}
	s.cfg.Tap.claimed.Add(1)
	// write and fsync overlapped the stream; switch is what came after.
	return s.installDone(zap.Bool("tapped", true), zap.Duration("write", t.write), zap.Duration("fsync", t.fsync),
		zap.Duration("switch", time.Since(began)))
}

// receiveFile writes exactly size bytes and the trailing checksum from r to
// path, and fsyncs it once, at the end; it returns how long the fsync took.
// With writeback, the disk writes each window while the next arrives.
func receiveFile(r io.Reader, path string, size int64, writeback bool, stopc <-chan struct{}, before func() error, report func(int64)) (time.Duration, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return 0, fmt.Errorf("create %s: %w", path, err)
	}
	defer f.Close()
	var crc hash.Hash32 = crc32.New(castagnoli)
	bw := bufio.NewWriterSize(&writebackFile{f: f, disabled: !writeback}, 256<<10)
	if _, err := copyProgress(io.MultiWriter(bw, crc), r, size, stopc, before, report); err != nil {
		return 0, err
	}
	var tail [4]byte
	if _, err := io.ReadFull(r, tail[:]); err != nil {
		return 0, fmt.Errorf("%w: checksum: %w", ErrSnapshotFormat, err)
	}
	if binary.LittleEndian.Uint32(tail[:]) != crc.Sum32() {
		return 0, fmt.Errorf("%w: checksum mismatch", ErrSnapshotFormat)
	}
	if err := bw.Flush(); err != nil {
		return 0, fmt.Errorf("write %s: %w", path, err)
	}
	t0 := time.Now()
	if err := f.Sync(); err != nil {
		return 0, fmt.Errorf("fsync %s: %w", path, err)
	}
	return time.Since(t0), f.Close()
}

// checkApplied opens a received file and checks that the index inside it is
// the one its header promised.
func checkApplied(path string, want uint64) error {
	// Read-write, because a WAL-mode file without its -shm cannot be opened
	// read-only.
	c, err := openWriter(path, false)
	if err != nil {
		return err
	}
	defer c.Close()
	got, err := queryInt64(c, "SELECT applied FROM "+metaTable+" WHERE id = 1")
	if err != nil {
		return fmt.Errorf("%w: received database: %w", ErrSnapshotFormat, err)
	}
	if uint64(got) != want {
		return fmt.Errorf("%w: received database is at index %d, header says %d", ErrSnapshotFormat, got, want)
	}
	return nil
}
