package sm

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// copyFileRange copies up to n bytes at offset off of src to the same
// offset of dst with copy_file_range(2), which takes explicit offsets and
// leaves both descriptors' own offsets alone.
func copyFileRange(dst, src *os.File, off, n int64) (int64, error) {
	roff, woff := off, off
	k, err := unix.CopyFileRange(int(src.Fd()), &roff, int(dst.Fd()), &woff, int(n), 0)
	if errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EXDEV) || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EOPNOTSUPP) {
		return preadCopy(dst, src, off, n)
	}
	if err != nil {
		return 0, err
	}
	return int64(k), nil
}
