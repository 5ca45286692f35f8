package sm

import (
	"io"
	"sync"
)

// readAhead reads exactly n bytes of r on a goroutine of its own, a few
// buffers ahead of its consumer, so that reading the received snapshot
// (Dragonboat's block checks and decompression) and writing the next
// generation (checksum, write) run at the same time: the slower alone
// sets the install's time. Close must be called; it waits for the
// goroutine, after which r may be read again.
type readAhead struct {
	full chan []byte
	free chan []byte
	done chan struct{}
	wg   sync.WaitGroup
	// err is the goroutine's read error, set before full is closed.
	err error
	// buf is the buffer being consumed, cur what is left of it.
	buf, cur []byte
	once     sync.Once
}

func newReadAhead(r io.Reader, n int64, bufSize, bufs int) *readAhead {
	ra := &readAhead{full: make(chan []byte, bufs), free: make(chan []byte, bufs), done: make(chan struct{})}
	for range bufs {
		ra.free <- make([]byte, bufSize)
	}
	ra.wg.Add(1)
	go func() {
		defer ra.wg.Done()
		defer close(ra.full)
		for n > 0 {
			var buf []byte
			select {
			case buf = <-ra.free:
			case <-ra.done:
				return
			}
			k, err := io.ReadFull(r, buf[:min(int64(len(buf)), n)])
			n -= int64(k)
			if k > 0 {
				ra.full <- buf[:k]
			}
			if err != nil {
				if err == io.EOF {
					err = io.ErrUnexpectedEOF
				}
				ra.err = err
				return
			}
		}
	}()
	return ra
}

func (ra *readAhead) Read(p []byte) (int, error) {
	if len(ra.cur) == 0 {
		buf, ok := <-ra.full
		if !ok {
			if ra.err != nil {
				return 0, ra.err
			}
			return 0, io.EOF
		}
		ra.buf, ra.cur = buf, buf
	}
	k := copy(p, ra.cur)
	ra.cur = ra.cur[k:]
	if len(ra.cur) == 0 {
		ra.free <- ra.buf[:cap(ra.buf)]
		ra.buf, ra.cur = nil, nil
	}
	return k, nil
}

// Close stops the goroutine and waits for it.
func (ra *readAhead) Close() {
	ra.once.Do(func() { close(ra.done) })
	ra.wg.Wait()
}
