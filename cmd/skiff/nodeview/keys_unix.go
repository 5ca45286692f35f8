//go:build unix

package nodeview

import (
	"os"
	"syscall"
)

// watchKeys runs readKeys on in until stop, which returns once the reader
// has ended (review item 12: it must not outlive Watch).
//
// A Read blocked on a terminal cannot be interrupted, so the reader reads
// a non-blocking duplicate of in, which Go's poller serves and whose Close
// wakes the Read. O_NONBLOCK is a flag of the open file that in shares;
// stop clears it again (in.Fd left in blocking mode, as Fd does).
func watchKeys(in *os.File, quit func()) (stop func(), err error) {
	src := int(in.Fd())
	fd, err := syscall.Dup(src)
	if err != nil {
		return nil, err
	}
	if err := syscall.SetNonblock(fd, true); err != nil {
		_ = syscall.Close(fd)
		return nil, err
	}
	f := os.NewFile(uintptr(fd), in.Name())
	done := make(chan struct{})
	go func() {
		defer close(done)
		readKeys(f, quit)
	}()
	return func() {
		_ = f.Close()
		<-done
		_ = syscall.SetNonblock(src, false)
	}, nil
}
