package backup

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
)

// metadataFile is the file store's record of the newest backup, named as
// rqlite's file client names it.
const metadataFile = "METADATA.json"

// fileMetadata is METADATA.json: rqlite's keys ("id" holds Skiff's sum).
type fileMetadata struct {
	ID        string `json:"id"`
	Timestamp int64  `json:"timestamp,omitempty"`
	File      string `json:"file,omitempty"`
}

// fileStore writes backups into a local directory (rqlite's auto/file).
// Every file appears whole or not at all: written beside its final name,
// fsynced, renamed, and the directory fsynced.
type fileStore struct {
	dir, file string
	timestamp bool
	now       func() time.Time
}

func newFileStore(c FileConfig, timestamp bool) *fileStore {
	return &fileStore{dir: c.Dir, file: c.File, timestamp: timestamp, now: time.Now}
}

func (f *fileStore) String() string { return "file://" + filepath.Join(f.dir, f.file) }

func (f *fileStore) metaPath() string { return filepath.Join(f.dir, metadataFile) }

// Upload writes the backup, then its metadata. The old metadata goes
// first, as rqlite's: a crash in between leaves no sum, which costs one
// upload, never a wrong skip.
func (f *fileStore) Upload(ctx context.Context, r io.Reader, size int64, sum string) error {
	if err := os.MkdirAll(f.dir, 0o755); err != nil {
		return fmt.Errorf("%w: %w", ErrStorage, err)
	}
	name := f.file
	if f.timestamp {
		name = TimestampedPath(name, f.now())
	}
	final := filepath.Join(f.dir, name)
	if err := os.Remove(f.metaPath()); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%w: %w", ErrStorage, err)
	}
	n, err := writeAtomic(ctx, final, r)
	if err != nil {
		return err
	}
	if size >= 0 && n != size {
		return fmt.Errorf("%w: wrote %d bytes of %d to %s", ErrStorage, n, size, final)
	}
	md, err := json.Marshal(fileMetadata{ID: sum, Timestamp: f.now().UnixMilli(), File: final})
	if err != nil {
		return fmt.Errorf("%w: %w", ErrStorage, err)
	}
	_, err = writeAtomic(ctx, f.metaPath(), bytes.NewReader(md))
	return err
}

// CurrentSum reads METADATA.json.
func (f *fileStore) CurrentSum(context.Context) (string, error) {
	md, err := f.metadata()
	if err != nil || md == nil {
		return "", err
	}
	return md.ID, nil
}

func (f *fileStore) metadata() (*fileMetadata, error) {
	b, err := os.ReadFile(f.metaPath())
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrStorage, err)
	}
	var md fileMetadata
	if err := json.Unmarshal(b, &md); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrStorage, f.metaPath(), err)
	}
	return &md, nil
}

// Download copies dir/file, or else the newest timestamped file of that
// name.
func (f *fileStore) Download(ctx context.Context, w io.Writer) (int64, error) {
	path := filepath.Join(f.dir, f.file)
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		entries, rerr := os.ReadDir(f.dir)
		if rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
			return 0, fmt.Errorf("%w: %w", ErrStorage, rerr)
		}
		re := timestamped(f.file)
		var names []string
		for _, e := range entries {
			if !e.IsDir() && re.MatchString(e.Name()) {
				names = append(names, e.Name())
			}
		}
		if len(names) == 0 {
			return 0, fmt.Errorf("%w: %s", ErrNotFound, path)
		}
		path = filepath.Join(f.dir, newest(names))
	}
	src, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("%w: %w", ErrStorage, err)
	}
	defer src.Close()
	n, err := io.Copy(w, ctxReader{ctx, src})
	if err != nil {
		return n, fmt.Errorf("%w: read %s: %w", ErrStorage, path, err)
	}
	return n, nil
}

// writeAtomic writes r to path through a temporary file in its directory.
func writeAtomic(ctx context.Context, path string, r io.Reader) (int64, error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return 0, fmt.Errorf("%w: %w", ErrStorage, err)
	}
	done := false
	defer func() {
		if !done {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()
	n, err := io.Copy(tmp, ctxReader{ctx, r})
	if err != nil {
		return n, fmt.Errorf("%w: write %s: %w", ErrStorage, path, err)
	}
	if err := tmp.Sync(); err != nil {
		return n, fmt.Errorf("%w: fsync %s: %w", ErrStorage, path, err)
	}
	if err := tmp.Close(); err != nil {
		return n, fmt.Errorf("%w: close %s: %w", ErrStorage, path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return n, fmt.Errorf("%w: %w", ErrStorage, err)
	}
	done = true
	return n, syncDir(dir)
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrStorage, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("%w: fsync %s: %w", ErrStorage, dir, err)
	}
	return nil
}

// ctxReader stops a copy when ctx ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
