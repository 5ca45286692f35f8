package sm

import "os"

// writebackWindow is how many bytes pass between two writeback requests.
const writebackWindow = 32 << 20

// writebackFile writes sequentially to f, asks the kernel to start writing
// each completed window to disk at once, and waits for the window before
// it, so a long write keeps at most about two windows dirty. Without it a
// large file's dirty pages all wait for its one fsync at the end, which
// then costs as long as the whole write did; and on ext4 (data=ordered)
// every other fsync on the device, such as the Raft log's of the nodes
// beside it, waits behind them. It changes when the bytes reach the disk,
// not whether: durability still comes from the final fsync.
type writebackFile struct {
	f *os.File
	// off is how many bytes were written; flushed is where the next
	// writeback request starts and prev where the last one started.
	off, flushed, prev int64
	// disabled turns the requests off (for measuring), and is set after
	// the first failure: the kernel may not support them on this file.
	disabled bool
}

func (w *writebackFile) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	w.off += int64(n)
	if err != nil {
		return n, err
	}
	if !w.disabled && w.off-w.flushed >= writebackWindow {
		if err := startWriteback(w.f, w.flushed, w.off-w.flushed); err != nil {
			w.disabled = true
			return n, nil
		}
		if w.flushed > w.prev {
			if err := waitWriteback(w.f, w.prev, w.flushed-w.prev); err != nil {
				w.disabled = true
			}
		}
		w.prev, w.flushed = w.flushed, w.off
	}
	return n, nil
}
