//go:build linux

package nodeview

import (
	"os"
	"syscall"
	"testing"
	"time"
)

// stopWithin fails the test if stop does not return: the reader would
// then outlive Watch.
func stopWithin(t *testing.T, stop func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { stop(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("stop did not return: the key reader is still blocked")
	}
}

func nonblocking(t *testing.T, fd uintptr) bool {
	t.Helper()
	fl, _, errno := syscall.Syscall(syscall.SYS_FCNTL, fd, syscall.F_GETFL, 0)
	if errno != 0 {
		t.Fatal(errno)
	}
	return fl&syscall.O_NONBLOCK != 0
}

// With no key typed, stop ends the reader (it used to stay blocked in
// Read) and leaves in blocking again; the writer still open shows that
// nothing but stop woke it.
func TestWatchKeysStop(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	quit := make(chan struct{}, 1)
	stop, err := watchKeys(r, func() { quit <- struct{}{} })
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	stopWithin(t, stop)
	if nonblocking(t, r.Fd()) {
		t.Error("in is left non-blocking")
	}
}

// q, Q, Ctrl-C and Ctrl-D quit, after other keys.
func TestWatchKeysQuit(t *testing.T) {
	for _, key := range []string{"q", "Q", "\x03", "\x04"} {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		quit := make(chan struct{}, 1)
		stop, err := watchKeys(r, func() { quit <- struct{}{} })
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write([]byte("ab" + key)); err != nil {
			t.Fatal(err)
		}
		select {
		case <-quit:
		case <-time.After(10 * time.Second):
			t.Fatalf("%q did not quit", key)
		}
		stopWithin(t, stop)
		r.Close()
		w.Close()
	}
}
