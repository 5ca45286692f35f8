package sm

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

func TestReadAhead(t *testing.T) {
	src := make([]byte, 10_000)
	for i := range src {
		src[i] = byte(i * 7)
	}
	t.Run("reads exactly n bytes and leaves the rest", func(t *testing.T) {
		r := bytes.NewReader(src)
		ra := newReadAhead(r, 9_000, 64, 3) // buffers reused many times
		got, err := io.ReadAll(ra)
		ra.Close()
		if err != nil || !bytes.Equal(got, src[:9_000]) {
			t.Fatalf("read %d bytes, %v; want the first 9000", len(got), err)
		}
		rest, _ := io.ReadAll(r)
		if !bytes.Equal(rest, src[9_000:]) {
			t.Fatalf("%d bytes left in the source, want 1000", len(rest))
		}
	})
	t.Run("a short source is an unexpected EOF", func(t *testing.T) {
		ra := newReadAhead(bytes.NewReader(src), 20_000, 1024, 2)
		got, err := io.ReadAll(ra)
		ra.Close()
		if !errors.Is(err, io.ErrUnexpectedEOF) || !bytes.Equal(got, src) {
			t.Fatalf("read %d bytes, %v; want all 10000 then io.ErrUnexpectedEOF", len(got), err)
		}
	})
	t.Run("close before the end stops the reader", func(t *testing.T) {
		r := bytes.NewReader(src)
		ra := newReadAhead(r, int64(len(src)), 100, 2)
		var p [10]byte
		if _, err := io.ReadFull(ra, p[:]); err != nil || !bytes.Equal(p[:], src[:10]) {
			t.Fatalf("first bytes: %v", err)
		}
		ra.Close() // returns: the goroutine waits for a free buffer or done
		if r.Len() < len(src)-400 {
			t.Fatalf("the reader ran %d bytes ahead, want at most its buffers", len(src)-r.Len())
		}
	})
}
