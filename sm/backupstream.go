package sm

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	sqlite3 "github.com/mattn/go-sqlite3"
	"go.uber.org/zap"
)

// errNoStream: a binary backup cannot be streamed from the database file;
// the caller copies it instead. Never returned to a client.
var errNoStream = errors.New("backup cannot be streamed")

// streamPinned writes a binary backup of the state src pins straight from
// the database file at live, with no copy of the database.
//
// The file holds exactly the pinned state once a PASSIVE checkpoint has
// backfilled every WAL frame, and keeps holding it while src's read
// transaction stays open: a checkpoint never writes frames past the mark
// of a reader (the argument of copyPinnedFile and of the snapshot stream,
// docs/recovery.md). So the pin is held until the last byte is written,
// and while it is, the writer's commits go on into the WAL, which grows by
// what they write.
//
// A client's backup leaves Skiff's internal tables out and sets the
// journal mode (scrubCopy). That touches few pages: page 1, the schema's
// b-tree, the internal tables' b-trees and the freelist's trunks. Those
// pages alone are copied into a sparse file as large as the database, the
// same scrub runs on it, and the pages it then holds (its data extents:
// the ones copied and any the scrub wrote) replace the live file's in the
// stream. A page the scrub reads that was not copied would read as zeros,
// and no such read is expected: the pages come from walking the b-trees
// the scrub drops, as SQLite's DROP TABLE does. TestBackupStreamMatchesCopy
// checks the output byte for byte against a scrub of a whole copy.
//
// The caller has checked, with one checkpoint, that the file holds the
// pinned state. It returns false, having written nothing, when the
// database cannot be streamed so (auto-vacuum, a file system without
// SEEK_DATA, a b-tree it cannot read).
func (s *StateMachine) streamPinned(ctx context.Context, src *sqlite3.SQLiteConn, live string, b *Backup, w io.Writer) (bool, error) {
	ov, err := s.scrubOverlay(ctx, src, live, b)
	if err != nil {
		if ctx.Err() != nil {
			return false, fmt.Errorf("backup: %w", ctx.Err())
		}
		s.log.Info("backup copies the database: it cannot be streamed from the file", zap.Error(err))
		return false, nil
	}
	defer ov.close()
	if s.onBackupPin != nil {
		s.onBackupPin("copy")
	}
	buf := make([]byte, 1<<20)
	off := int64(0)
	for _, e := range append(ov.extents, [2]int64{ov.size, ov.size}) {
		if err := copySection(ctx, w, ov.live, off, e[0]-off, buf); err != nil {
			return false, err
		}
		if err := copySection(ctx, w, ov.tmp, e[0], e[1]-e[0], buf); err != nil {
			return false, err
		}
		off = e[1]
	}
	return true, nil
}

// copySection writes n bytes of f from off to w, checking ctx between
// reads.
func copySection(ctx context.Context, w io.Writer, f *os.File, off, n int64, buf []byte) error {
	for n > 0 {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("backup: %w", err)
		}
		k, err := f.ReadAt(buf[:min(int64(len(buf)), n)], off)
		if k > 0 {
			if _, werr := w.Write(buf[:k]); werr != nil {
				return werr // countingWriter marks it ErrBackupWrite
			}
		}
		if err != nil && !(errors.Is(err, io.EOF) && int64(k) == n) {
			return fmt.Errorf("%w: read %s at %d: %w", ErrStorage, f.Name(), off, err)
		}
		off += int64(k)
		n -= int64(k)
	}
	return nil
}

// backupOverlay is the scrubbed pages of one pinned state: the stream is
// live's bytes up to size, with tmp's in each extent.
type backupOverlay struct {
	live    *os.File
	release func()
	tmp     *os.File
	extents [][2]int64
	size    int64
}

func (o *backupOverlay) close() {
	o.release()
	path := o.tmp.Name()
	_ = o.tmp.Close()
	for _, suffix := range []string{"", "-wal", "-shm", "-journal"} {
		_ = os.Remove(path + suffix)
	}
}

// scrubOverlay copies the pages the scrub reads into a sparse file and
// scrubs it (see streamPinned). The caller's checkpoint has left the
// pinned state in live.
func (s *StateMachine) scrubOverlay(ctx context.Context, src *sqlite3.SQLiteConn, live string, b *Backup) (_ *backupOverlay, err error) {
	if av, err := queryInt64(src, "PRAGMA auto_vacuum"); err != nil || av != 0 {
		return nil, fmt.Errorf("%w: auto_vacuum %d (%v)", errNoStream, av, err)
	}
	pages, err := queryInt64(src, "PRAGMA page_count")
	if err != nil {
		return nil, fmt.Errorf("page count: %w", err)
	}
	roots, err := internalRoots(ctx, src)
	if err != nil {
		return nil, err
	}
	// The live file is read through the descriptor SaveSnapshot uses:
	// closing a descriptor of our own would drop SQLite's locks on it.
	f, release, err := s.held.acquire(live)
	if err != nil {
		return nil, err
	}
	ov := &backupOverlay{live: f, release: release}
	defer func() {
		if err != nil {
			if ov.tmp != nil {
				ov.close()
			} else {
				release()
			}
		}
	}()
	g, err := readGeometry(f)
	if err != nil {
		return nil, err
	}
	g.pages = pages // the pinned count; the header's is the same once checkpointed
	size := pages * g.pageSize
	if st, err := f.Stat(); err != nil || st.Size() < size {
		return nil, fmt.Errorf("%w: %s shorter than the pinned state (%d bytes)", ErrStorage, live, size)
	}
	set := pageSet{}
	pr := &pageReader{r: f, g: g}
	for _, root := range append([]uint32{1}, roots...) {
		if err := pr.addBtree(root, set); err != nil {
			return nil, fmt.Errorf("%w: b-tree at page %d: %w", errNoStream, root, err)
		}
	}
	if err := pr.addFreelistTrunks(set); err != nil {
		return nil, fmt.Errorf("%w: freelist: %w", errNoStream, err)
	}
	if ov.tmp, err = os.CreateTemp(s.cfg.Dir, "backup-*"+tmpSuffix); err != nil {
		return nil, fmt.Errorf("create backup file: %w", err)
	}
	if err := ov.tmp.Truncate(size); err != nil {
		return nil, fmt.Errorf("size backup file: %w", err)
	}
	nums := make([]uint32, 0, len(set))
	for n := range set {
		nums = append(nums, n)
	}
	slices.Sort(nums)
	page := make([]byte, g.pageSize)
	var want [][2]int64
	for _, n := range nums {
		at := int64(n-1) * g.pageSize
		if _, err := f.ReadAt(page, at); err != nil {
			return nil, fmt.Errorf("%w: read page %d: %w", ErrStorage, n, err)
		}
		if _, err := ov.tmp.WriteAt(page, at); err != nil {
			return nil, fmt.Errorf("write backup file: %w", err)
		}
		if k := len(want); k > 0 && want[k-1][1] == at {
			want[k-1][1] = at + g.pageSize
		} else {
			want = append(want, [2]int64{at, at + g.pageSize})
		}
	}
	// The overlay is told apart from the rest by the file's holes: they must
	// be exactly the pages not copied (a file system that fills holes, or
	// blocks larger than a page, would make other pages look written).
	got, err := dataExtents(ov.tmp, size)
	if err != nil || !slices.Equal(got, want) {
		return nil, fmt.Errorf("%w: the file system does not keep the copy's holes (%v)", errNoStream, err)
	}
	if err := scrubCopy(ov.tmp.Name(), b); err != nil {
		return nil, fmt.Errorf("%w: %w", errNoStream, err)
	}
	st, err := ov.tmp.Stat()
	if err != nil {
		return nil, fmt.Errorf("stat backup file: %w", err)
	}
	ov.size = st.Size()
	if ov.extents, err = dataExtents(ov.tmp, ov.size); err != nil {
		return nil, fmt.Errorf("%w: %w", errNoStream, err)
	}
	// Every byte not in an extent comes from the pinned file, so it must lie
	// within the pinned state, on page boundaries.
	off := int64(0)
	for _, e := range append(ov.extents, [2]int64{ov.size, ov.size}) {
		if e[0]%g.pageSize != 0 || e[1]%g.pageSize != 0 || (e[0] > off && e[0] > size) {
			return nil, fmt.Errorf("%w: scrubbed extent %d-%d of a %d-byte state", errNoStream, e[0], e[1], size)
		}
		off = e[1]
	}
	return ov, nil
}

// internalRoots returns the root pages of Skiff's tables and their
// indexes, and of SQLite's tables DROP TABLE edits, in the state src pins.
func internalRoots(ctx context.Context, src *sqlite3.SQLiteConn) ([]uint32, error) {
	// DROP TABLE also deletes the table's rows from sqlite_sequence and
	// the sqlite_stat tables, when they exist.
	q := "SELECT rootpage FROM sqlite_schema WHERE rootpage > 0 AND (tbl_name IN ('" +
		strings.Join(internalTables, "','") + "') OR tbl_name IN ('sqlite_sequence', 'sqlite_stat1', 'sqlite_stat4'))"
	var roots []uint32
	err := eachRow(ctx, src, q, 1, func(v []driver.Value) error {
		n, _ := v[0].(int64)
		roots = append(roots, uint32(n))
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("internal tables' pages: %w", err)
	}
	return roots, nil
}
