package filewatch

import (
	"context"
	"os"
	"time"
)

// stat is one file's size and modification time.
type stat struct {
	size  int64
	mtime time.Time
}

// Stamp is the size and modification time of some files, in order.
type Stamp struct{ files []stat }

// Take stamps paths; a file that cannot be stat'ed is an error.
func Take(paths ...string) (Stamp, error) {
	st := Stamp{files: make([]stat, 0, len(paths))}
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			return Stamp{}, err
		}
		st.files = append(st.files, stat{size: fi.Size(), mtime: fi.ModTime()})
	}
	return st, nil
}

// Equal reports whether s and o stamp the same files unchanged.
func (s Stamp) Equal(o Stamp) bool {
	if len(s.files) != len(o.files) {
		return false
	}
	for i, f := range s.files {
		if f.size != o.files[i].size || !f.mtime.Equal(o.files[i].mtime) {
			return false
		}
	}
	return true
}

// Poll calls check every interval until ctx ends. check reloads what
// changed and reports whether it did; report hears of each reload and of
// each failure that differs from the last one (a missing file is reported
// once, not every interval).
func Poll(ctx context.Context, interval time.Duration, check func() (bool, error), report func(changed bool, err error)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	var lastErr string
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		changed, err := check()
		switch {
		case err != nil:
			if err.Error() != lastErr {
				report(false, err)
			}
			lastErr = err.Error()
		case changed:
			lastErr = ""
			report(true, nil)
		}
	}
}
