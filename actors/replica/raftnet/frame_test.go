package raftnet

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"net"
	"runtime"
	"testing"
	"time"
)

// frameOf builds a frame carrying payload.
func frameOf(method uint16, payload []byte) []byte {
	f := make([]byte, frameHead+len(payload))
	copy(f[frameHead:], payload)
	putFrame(f, method)
	return f
}

func TestFrames(t *testing.T) {
	good := frameOf(methodRaft, []byte("batch"))
	chunk := frameOf(methodSnapshot, []byte("chunk"))
	badHeaderCRC := frameOf(methodRaft, []byte("batch"))
	badHeaderCRC[2+11] ^= 1
	badBodyCRC := frameOf(methodRaft, []byte("batch"))
	badBodyCRC[len(badBodyCRC)-1] ^= 1
	// A header that checks out but names an unknown method, or no payload.
	badMethod := frameOf(methodRaft, []byte("x"))
	binary.BigEndian.PutUint16(badMethod[2:], 7)
	binary.BigEndian.PutUint32(badMethod[2+10:], 0)
	resum := func(f []byte) {
		h := f[2:frameHead]
		binary.BigEndian.PutUint32(h[10:], 0)
		binary.BigEndian.PutUint32(h[10:], crcOf(h))
	}
	resum(badMethod)
	empty := frameOf(methodRaft, nil)

	tests := []struct {
		name    string
		wire    []byte
		method  uint16
		payload string
		err     error
	}{
		{"raft batch", good, methodRaft, "batch", nil},
		{"snapshot chunk", chunk, methodSnapshot, "chunk", nil},
		{"poison", poison[:], 0, "", errPoison},
		{"bad magic", []byte("GET / HTTP/1.1\r\n"), 0, "", ErrBadFrame},
		{"header checksum", badHeaderCRC, 0, "", ErrBadFrame},
		{"payload checksum", badBodyCRC, 0, "", ErrBadFrame},
		{"unknown method", badMethod, 0, "", ErrBadFrame},
		{"empty payload", empty, 0, "", ErrBadFrame},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, b := net.Pipe()
			defer a.Close()
			defer b.Close()
			go func() { _, _ = a.Write(tc.wire) }()
			method, body, err := newFrameReader(b).next()
			if !errors.Is(err, tc.err) {
				t.Fatalf("err = %v, want %v", err, tc.err)
			}
			if err == nil && (method != tc.method || string(body) != tc.payload) {
				t.Fatalf("got method %d payload %q, want %d %q", method, body, tc.method, tc.payload)
			}
		})
	}
}

// A frame split across writes, with pauses, is read whole; a reader with
// nothing to read reports idle and keeps what half a magic it has.
func TestFrameReaderWaitsAcrossWrites(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	f := frameOf(methodRaft, []byte("split frame"))
	r := newFrameReader(b)
	go func() {
		_, _ = a.Write(f[:1])
		time.Sleep(magicTimeout + 200*time.Millisecond)
		_, _ = a.Write(f[1:7])
		time.Sleep(100 * time.Millisecond)
		_, _ = a.Write(f[7:])
	}()
	idle := 0
	for {
		_, body, err := r.next()
		if errors.Is(err, errIdle) {
			idle++
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if string(body) != "split frame" {
			t.Fatalf("payload %q", body)
		}
		break
	}
	if idle == 0 {
		t.Fatal("a pause longer than the idle timeout did not report idle")
	}
}

// The bytes Dragonboat's own transport writes for these frames, from its
// requestHeader.encode and writeMessage (internal/transport/tcp.go) run
// verbatim: putFrame must produce them exactly, or nodes on the two
// transports cannot talk.
func TestFramesMatchDragonboatsBytes(t *testing.T) {
	for _, tc := range []struct {
		method  uint16
		payload string
		golden  string
	}{
		{methodRaft, "batch", "ae7d006400000000000000056bd50271f80b52d46261746368"},
		{methodSnapshot, "chunk", "ae7d00c8000000000000000548b743dc9506712e6368756e6b"},
	} {
		if got := hex.EncodeToString(frameOf(tc.method, []byte(tc.payload))); got != tc.golden {
			t.Errorf("method %d: %s, Dragonboat writes %s", tc.method, got, tc.golden)
		}
	}
}

// A header is 20 bytes anyone reaching the port can send: the size it
// declares must not be allocated before the bytes arrive.
func TestFrameSizeIsNotTrusted(t *testing.T) {
	f := make([]byte, frameHead)
	copy(f, magic[:])
	h := f[2:]
	binary.BigEndian.PutUint16(h, methodRaft)
	binary.BigEndian.PutUint64(h[2:], 1<<30) // claims 1 GiB
	binary.BigEndian.PutUint32(h[14:], 0)
	binary.BigEndian.PutUint32(h[10:], crcOf(h[:headerSize]))
	a, b := net.Pipe()
	defer b.Close()
	go func() {
		_, _ = a.Write(append(f, make([]byte, 1000)...))
		a.Close() // and nothing more
	}()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, _, err := newFrameReader(b).next()
	runtime.ReadMemStats(&after)
	if err == nil {
		t.Fatal("a truncated frame was accepted")
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 16<<20 {
		t.Fatalf("reading 1,020 bytes of a frame claiming 1 GiB allocated %d MiB", grew>>20)
	}
}

// CheckFrameStart accepts a valid frame head and refuses anything else
// with ErrBadFrame, without reading the payload.
func TestCheckFrameStart(t *testing.T) {
	good := frameOf(methodRaft, []byte("payload"))
	resum := func(f []byte) []byte { // header checksum recomputed
		binary.BigEndian.PutUint32(f[12:], 0)
		binary.BigEndian.PutUint32(f[12:], crcOf(f[2:frameHead]))
		return f
	}
	mutate := func(fn func(f []byte) []byte) []byte {
		return fn(append([]byte(nil), good...))
	}
	cases := []struct {
		name string
		b    []byte
		ok   bool
	}{
		{"valid", good, true},
		{"valid head alone", good[:FrameHeadSize], true},
		{"snapshot chunk", frameOf(methodSnapshot, []byte("c")), true},
		{"short", good[:FrameHeadSize-1], false},
		{"no magic", mutate(func(f []byte) []byte { f[1] = 0; return f }), false},
		{"header checksum", mutate(func(f []byte) []byte { f[9]++; return f }), false},
		{"unknown method", mutate(func(f []byte) []byte { binary.BigEndian.PutUint16(f[2:], 7); return resum(f) }), false},
		{"empty payload", mutate(func(f []byte) []byte { binary.BigEndian.PutUint64(f[4:], 0); return resum(f) }), false},
		{"oversized", mutate(func(f []byte) []byte { binary.BigEndian.PutUint64(f[4:], maxPayload+1); return resum(f) }), false},
	}
	for _, tc := range cases {
		before := append([]byte(nil), tc.b...)
		err := CheckFrameStart(tc.b)
		if tc.ok != (err == nil) || (err != nil && !errors.Is(err, ErrBadFrame)) {
			t.Errorf("%s: %v", tc.name, err)
		}
		if string(before) != string(tc.b) {
			t.Errorf("%s: the bytes checked were modified", tc.name)
		}
	}
}

// Snapshot chunks, a little over chunkBytes each, are read into one kept
// buffer: none after the first allocates (each used to cost a 2 MiB
// allocation and a 2 MiB copy).
func TestFrameReaderKeepsTheChunkBuffer(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	payload := make([]byte, chunkBytes+300)
	for i := range payload {
		payload[i] = byte(i)
	}
	const frames = 4
	go func() {
		for range frames {
			if _, err := a.Write(frameOf(methodSnapshot, payload)); err != nil {
				return
			}
		}
	}()
	r := newFrameReader(b)
	var first *byte
	for i := range frames {
		_, body, err := r.next()
		if err != nil {
			t.Fatal(err)
		}
		if len(body) != len(payload) || body[len(body)-1] != payload[len(payload)-1] {
			t.Fatalf("frame %d: payload of %d bytes, want %d", i, len(body), len(payload))
		}
		if i == 0 {
			first = &body[0]
		} else if &body[0] != first {
			t.Fatalf("frame %d was read into a new buffer", i)
		}
	}
}
