package replica

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/lni/dragonboat/v4"
)

func TestHotPathLease(t *testing.T) {
	var h hotPath
	if _, err := h.enter(); !errors.Is(err, ErrNotStarted) {
		t.Fatalf("before open: %v", err)
	}
	run := &running{nh: &dragonboat.NodeHost{}} // never called: only its identity matters
	h.open(run)
	got, err := h.enter()
	if err != nil || got != run {
		t.Fatalf("after open: %v %v", got, err)
	}
	// close waits for the lease held above.
	closed := make(chan struct{})
	go func() { h.close(); close(closed) }()
	select {
	case <-closed:
		t.Fatal("close returned while a request held the NodeHost")
	case <-time.After(50 * time.Millisecond):
	}
	// New requests are refused at once while close waits.
	if _, err := h.enter(); !errors.Is(err, ErrStopped) {
		t.Fatalf("while closing: %v", err)
	}
	h.leave()
	<-closed
	if _, err := h.enter(); !errors.Is(err, ErrStopped) {
		t.Fatalf("after close: %v", err)
	}
}

// Under -race: leases taken concurrently with close never see a closed
// NodeHost (nil) while holding one.
func TestHotPathConcurrentClose(t *testing.T) {
	var h hotPath
	h.open(&running{nh: &dragonboat.NodeHost{}})
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				run, err := h.enter()
				if err != nil {
					if !errors.Is(err, ErrStopped) {
						t.Error(err)
					}
					return
				}
				if run == nil || h.run == nil {
					t.Error("lease without a NodeHost")
				}
				h.leave()
			}
		}()
	}
	time.Sleep(20 * time.Millisecond)
	h.close()
	wg.Wait()
}

// While held, callers are refused as not started; the owner gets in.
func TestHotPathHeld(t *testing.T) {
	var h hotPath
	h.held.Store(true)
	run := &running{nh: &dragonboat.NodeHost{}}
	h.open(run)
	if _, err := h.enter(); !errors.Is(err, ErrNotStarted) {
		t.Fatalf("held: %v, want ErrNotStarted", err)
	}
	got, err := h.enterHeld()
	if err != nil || got != run {
		t.Fatalf("enterHeld: %v %v", got, err)
	}
	h.leave()
	h.release()
	if _, err := h.enter(); err != nil {
		t.Fatalf("released: %v", err)
	}
	h.leave()
	h.close()
	if _, err := h.enterHeld(); !errors.Is(err, ErrStopped) {
		t.Fatalf("enterHeld after close: %v", err)
	}
}
