//go:build !unix

package nodeview

import "os"

// watchKeys runs readKeys on in. Without a way to wake a blocked Read
// here, the reader outlives Watch until the next key or the process's
// exit, which follows Watch in `skiff status`.
func watchKeys(in *os.File, quit func()) (stop func(), err error) {
	go readKeys(in, quit)
	return func() {}, nil
}
