//go:build !linux

package sm

import (
	"errors"
	"os"
)

// startWriteback is Linux's sync_file_range; elsewhere the final fsync
// flushes everything.
func startWriteback(*os.File, int64, int64) error {
	return errors.ErrUnsupported
}

func waitWriteback(*os.File, int64, int64) error {
	return errors.ErrUnsupported
}
