package sm

import (
	"context"
	"database/sql/driver"
	"fmt"
	"os"
	"sync"
)

// heldFiles keeps the descriptors SaveSnapshot reads database files
// through. Closing any descriptor of a file releases every POSIX lock the
// process holds on it (fcntl semantics; SQLite's "How To Corrupt" 2.2),
// including the SHARED locks SQLite's connections keep on the database
// file, which SQLite itself never closes early for that reason. So a
// descriptor stays open until its file is retired (replaced by an install,
// or the machine closed) and no stream reads it any more, by which time
// SQLite's connections to it are closed too.
type heldFiles struct {
	mu    sync.Mutex
	files map[string]*heldFile
}

type heldFile struct {
	f       *os.File
	users   int
	retired bool
}

// acquire returns the descriptor of path and a release for it.
func (h *heldFiles) acquire(path string) (*os.File, func(), error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	hf := h.files[path]
	if hf == nil || hf.retired {
		f, err := os.Open(path)
		if err != nil {
			return nil, nil, fmt.Errorf("open %s: %w", path, err)
		}
		if h.files == nil {
			h.files = map[string]*heldFile{}
		}
		if hf != nil {
			// A retired descriptor still streamed elsewhere closes when
			// that stream releases it; this path now names a new file.
			hf.retired = true
		}
		hf = &heldFile{f: f}
		h.files[path] = hf
	}
	hf.users++
	var once sync.Once
	return hf.f, func() { once.Do(func() { h.release(path, hf) }) }, nil
}

func (h *heldFiles) release(path string, hf *heldFile) {
	h.mu.Lock()
	defer h.mu.Unlock()
	hf.users--
	if hf.retired && hf.users == 0 {
		_ = hf.f.Close()
		if h.files[path] == hf {
			delete(h.files, path)
		}
	}
}

// retireAll closes every descriptor no stream uses and marks the others to
// close when their stream ends. Call it after SQLite's connections to the
// files are closed.
func (h *heldFiles) retireAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for path, hf := range h.files {
		hf.retired = true
		if hf.users == 0 {
			_ = hf.f.Close()
			delete(h.files, path)
		}
	}
}

// checkpointAll runs PRAGMA wal_checkpoint(mode) on a connection of its
// own to the database at path, waiting up to busyMS for locks, and fails
// unless every WAL frame was copied into the main file. It holds
// checkpointMu, as every checkpoint of the live database does.
func (s *StateMachine) checkpointAll(path, mode string, busyMS int) error {
	s.checkpointMu.Lock()
	defer s.checkpointMu.Unlock()
	ck, err := openCheckpointer(path, busyMS)
	if err != nil {
		return err
	}
	var busy, logFrames, done int64 = 1, -1, -2
	err = eachRow(context.Background(), ck, "PRAGMA wal_checkpoint("+mode+")", 3, func(v []driver.Value) error {
		busy, _ = v[0].(int64)
		logFrames, _ = v[1].(int64)
		done, _ = v[2].(int64)
		return nil
	})
	_ = ck.Close()
	if err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	if busy != 0 || logFrames != done {
		return fmt.Errorf("checkpoint incomplete: busy %d, %d of %d frames", busy, done, logFrames)
	}
	return nil
}
