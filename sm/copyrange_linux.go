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

// writeBehind starts the writeback of the n bytes at off of f and waits
// for the n bytes before them, so that a long write keeps at most about
// 2n bytes dirty. A large file's dirty pages otherwise wait for its one
// fsync at the end, and on ext4 (data=ordered) every other fsync on the
// device, such as the Raft log's of the nodes beside it, then waits behind
// them.
func writeBehind(f *os.File, off, n int64) {
	fd := int(f.Fd())
	_ = unix.SyncFileRange(fd, off, n, unix.SYNC_FILE_RANGE_WRITE)
	if off >= n {
		_ = unix.SyncFileRange(fd, off-n, n, unix.SYNC_FILE_RANGE_WAIT_BEFORE|unix.SYNC_FILE_RANGE_WRITE|unix.SYNC_FILE_RANGE_WAIT_AFTER)
	}
}
