package backup

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/klauspost/compress/flate"
	gzip "github.com/klauspost/compress/gzip"
	// The sqlite3 driver, for the restored file's check.
	_ "github.com/mattn/go-sqlite3"
	"go.uber.org/zap"
)

// restorePrefix names a restore's staged files; they end in tmpSuffix.
const restorePrefix = "auto-restore-"

var (
	gzipMagic   = []byte{0x1f, 0x8b, 0x08}
	sqliteMagic = []byte("SQLite format 3\x00")
)

// Restored is a downloaded and checked backup, staged under the data
// directory.
type Restored struct {
	// Path is the uncompressed SQLite file; the caller removes it (Remove).
	Path string
	// Downloaded is the object's size, Size the database's.
	Downloaded, Size int64
	Compressed       bool
	Duration         time.Duration
}

// Remove deletes the staged file and any SQLite side files.
func (r *Restored) Remove() { removeSQLite(r.Path) }

// Download fetches the backup cfg names into dir (bounded by cfg.Timeout),
// gunzips it when it is gzip, and checks it is a sound SQLite database
// (header and PRAGMA quick_check). On any failure every staged file is
// gone. An error wrapping ErrInvalidBackup means the object is not a
// database; any other is a failed download, which cfg.ContinueOnFailure
// may pass over, as rqlite does.
func Download(ctx context.Context, cfg RestoreConfig, dir string, store Store, log *zap.Logger) (*Restored, error) {
	cfg = cfg.WithDefaults()
	if log == nil {
		log = zap.NewNop()
	}
	if store == nil {
		var err error
		if store, err = NewStore(cfg.Storage, false); err != nil {
			return nil, err
		}
	}
	removeStaged(dir, restorePrefix) // a crashed restore's files
	start := time.Now()
	dl, err := os.CreateTemp(dir, restorePrefix+"*.download"+tmpSuffix)
	if err != nil {
		return nil, fmt.Errorf("stage restore: %w", err)
	}
	defer os.Remove(dl.Name())
	defer dl.Close()
	// The timeout bounds the download only, as rqlite's: gunzip and the
	// check of a large database may take longer after a good download.
	dctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	n, err := store.Download(dctx, dl)
	timedOut := dctx.Err() != nil && ctx.Err() == nil
	cancel()
	if err != nil {
		if timedOut && !errors.Is(err, ErrNotFound) {
			err = fmt.Errorf("%w (timeout %s)", err, cfg.Timeout)
		}
		return nil, err
	}
	log.Info("auto-restore downloaded", zap.String("source", store.String()), zap.Int64("bytes", n), zap.Duration("duration", time.Since(start)))
	if _, err := dl.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("stage restore: %w", err)
	}
	br := bufio.NewReaderSize(dl, 256<<10)
	head, _ := br.Peek(len(sqliteMagic))
	r := &Restored{Downloaded: n}
	var src io.Reader = br
	if bytes.HasPrefix(head, gzipMagic) {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("%w: gunzip %s: %w", ErrInvalidBackup, store, err)
		}
		defer zr.Close()
		src, r.Compressed = zr, true
	}
	out, err := os.CreateTemp(dir, restorePrefix+"*"+tmpSuffix)
	if err != nil {
		return nil, fmt.Errorf("stage restore: %w", err)
	}
	r.Path = out.Name()
	ok := false
	defer func() {
		if !ok {
			r.Remove()
		}
	}()
	r.Size, err = io.Copy(out, ctxReader{ctx, src})
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		// A corrupt or truncated gzip stream is a bad object, never a
		// failed download that continue_on_failure may pass over.
		if r.Compressed && ctx.Err() == nil && isGzipError(err) {
			return nil, fmt.Errorf("%w: gunzip %s: %w", ErrInvalidBackup, store, err)
		}
		return nil, fmt.Errorf("stage restore: %w", err)
	}
	if err := checkSQLite(ctx, r.Path); err != nil {
		return nil, fmt.Errorf("%s: %w", store, err)
	}
	r.Duration = time.Since(start)
	ok = true
	return r, nil
}

// isGzipError reports whether err comes from a damaged gzip stream (and
// not from writing the staged file).
func isGzipError(err error) bool {
	return errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, gzip.ErrChecksum) ||
		errors.Is(err, gzip.ErrHeader) || errors.As(err, new(flate.CorruptInputError))
}

// checkSQLite checks the header and runs PRAGMA quick_check: a file with a
// valid header may be damaged inside, and booting it would replicate the
// damage.
func checkSQLite(ctx context.Context, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidBackup, err)
	}
	head := make([]byte, len(sqliteMagic))
	_, err = io.ReadFull(f, head)
	f.Close()
	if err != nil || !bytes.Equal(head, sqliteMagic) {
		return fmt.Errorf("%w: no SQLite header", ErrInvalidBackup)
	}
	db, err := sql.Open("sqlite3", "file:"+path)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidBackup, err)
	}
	defer func() {
		db.Close()
		for _, s := range []string{"-wal", "-shm"} {
			_ = os.Remove(path + s)
		}
	}()
	rows, err := db.QueryContext(ctx, "PRAGMA quick_check(5)")
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidBackup, err)
	}
	defer rows.Close()
	var problems []string
	for rows.Next() {
		var msg string
		if err := rows.Scan(&msg); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalidBackup, err)
		}
		if msg != "ok" {
			problems = append(problems, msg)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidBackup, err)
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: quick_check: %s", ErrInvalidBackup, strings.Join(problems, "; "))
	}
	return nil
}
