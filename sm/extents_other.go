//go:build !linux

package sm

import (
	"errors"
	"os"
)

// dataExtents is Linux-only; elsewhere a backup copies the database whole.
func dataExtents(*os.File, int64) ([][2]int64, error) {
	return nil, errors.New("no SEEK_DATA on this platform")
}
