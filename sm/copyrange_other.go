//go:build !linux

package sm

import "os"

func copyFileRange(dst, src *os.File, off, n int64) (int64, error) {
	return preadCopy(dst, src, off, n)
}
