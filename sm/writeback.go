package sm

import (
	"fmt"
	"os"
)

// writebackWindow is how many bytes pass between two writeback requests.
const writebackWindow = 16 << 20

// writebackFile writes sequentially to f and asks the kernel to start
// writing each completed window to disk at once (without waiting for it),
// so that the disk works while the rest arrives and the one fsync at the
// end has little left to flush. Without it, a file smaller than the dirty
// page threshold stays entirely in memory until that fsync, which then
// costs as long as the whole write did. It changes when the bytes reach
// the disk, not whether: durability still comes from the final fsync.
type writebackFile struct {
	f *os.File
	// off is how many bytes were written; flushed is where the next
	// writeback request starts.
	off, flushed int64
	// disabled turns the requests off (for measuring), and is set after
	// the first failure: the kernel may not support them on this file.
	disabled bool
}

func (w *writebackFile) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	w.off += int64(n)
	if err != nil {
		return n, fmt.Errorf("write %s: %w", w.f.Name(), err)
	}
	if !w.disabled && w.off-w.flushed >= writebackWindow {
		if startWriteback(w.f, w.flushed, w.off-w.flushed) != nil {
			w.disabled = true
		}
		w.flushed = w.off
	}
	return n, nil
}
