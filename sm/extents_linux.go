//go:build linux

package sm

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// dataExtents lists the byte ranges of f that hold data rather than holes
// (lseek SEEK_DATA/SEEK_HOLE), in order.
func dataExtents(f *os.File, size int64) ([][2]int64, error) {
	var out [][2]int64
	fd := int(f.Fd())
	for off := int64(0); off < size; {
		start, err := unix.Seek(fd, off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			break // no data after off
		}
		if err != nil {
			return nil, fmt.Errorf("seek data: %w", err)
		}
		end, err := unix.Seek(fd, start, unix.SEEK_HOLE)
		if err != nil {
			return nil, fmt.Errorf("seek hole: %w", err)
		}
		end = min(end, size)
		if end <= start {
			return nil, fmt.Errorf("seek: extent %d-%d", start, end)
		}
		out = append(out, [2]int64{start, end})
		off = end
	}
	return out, nil
}
