package raftnet

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net"
	"slices"
	"time"
)

// The wire format of Dragonboat's TCP transport: every frame is
//
//	magic [2]byte = 0xAE 0x7D
//	method  uint16  (100 raft message batch, 200 snapshot chunk)
//	size    uint64  (payload bytes)
//	hdrCRC  uint32  (CRC32-IEEE of the 18 header bytes with this field zero)
//	bodyCRC uint32  (CRC32-IEEE of the payload)
//	payload [size]byte
//
// all big-endian. A snapshot stream ends with the poison 0x00 0x00 in place
// of a magic, answered by the same two bytes.
const (
	headerSize = 18
	frameHead  = 2 + headerSize

	methodRaft     uint16 = 100
	methodSnapshot uint16 = 200

	// maxPayload bounds a frame's declared size. A message batch is
	// bounded far below it by Dragonboat's entry and batch limits. Memory
	// is not what it protects: the payload buffer grows only as bytes
	// arrive (frameReader.next).
	maxPayload = 1 << 31
)

var (
	magic  = [2]byte{0xAE, 0x7D}
	poison = [2]byte{0x00, 0x00}
)

// Deadlines, as Dragonboat's transport has them.
const (
	magicTimeout  = time.Second     // an idle inbound connection wakes this often
	headerTimeout = 2 * time.Second // from the magic to the end of the header
	// chunkTimeout is allowed per chunkBytes of payload, read or written.
	chunkTimeout = 5 * time.Second
	chunkBytes   = 2 << 20
	// keepAlive is the TCP keep-alive period, and how long a snapshot
	// stream's sender waits for the poison's answer.
	keepAlive = 10 * time.Second
)

// putFrame fills frame[:frameHead] for the payload in frame[frameHead:].
func putFrame(frame []byte, method uint16) {
	payload := frame[frameHead:]
	copy(frame, magic[:])
	h := frame[2:frameHead]
	binary.BigEndian.PutUint16(h, method)
	binary.BigEndian.PutUint64(h[2:], uint64(len(payload)))
	binary.BigEndian.PutUint32(h[10:], 0)
	binary.BigEndian.PutUint32(h[14:], crcOf(payload))
	binary.BigEndian.PutUint32(h[10:], crcOf(h))
}

// writeFrame writes a whole frame with one Write.
func writeFrame(c net.Conn, frame []byte) error {
	d := headerTimeout + chunkTimeout*time.Duration(1+len(frame)/chunkBytes)
	if err := c.SetWriteDeadline(time.Now().Add(d)); err != nil {
		return err
	}
	_, err := c.Write(frame)
	return err
}

// header is a decoded frame header.
type header struct {
	method  uint16
	size    uint64
	bodyCRC uint32
}

func decodeHeader(h []byte) (header, error) {
	got := binary.BigEndian.Uint32(h[10:])
	binary.BigEndian.PutUint32(h[10:], 0)
	want := crc32.ChecksumIEEE(h[:headerSize])
	binary.BigEndian.PutUint32(h[10:], got)
	if got != want {
		return header{}, fmt.Errorf("%w: header checksum", ErrBadFrame)
	}
	hd := header{method: binary.BigEndian.Uint16(h), size: binary.BigEndian.Uint64(h[2:]), bodyCRC: binary.BigEndian.Uint32(h[14:])}
	if hd.method != methodRaft && hd.method != methodSnapshot {
		return header{}, fmt.Errorf("%w: method %d", ErrBadFrame, hd.method)
	}
	if hd.size == 0 || hd.size > maxPayload {
		return header{}, fmt.Errorf("%w: payload of %d bytes", ErrBadFrame, hd.size)
	}
	return hd, nil
}

// frameReader reads frames from one inbound connection.
type frameReader struct {
	c    net.Conn
	r    *bufio.Reader
	head [frameHead]byte
	buf  []byte // reused for payloads, grown to the largest seen up to maxKeptBuf
}

// maxKeptBuf is the largest buffer a connection keeps between frames,
// enough for a snapshot chunk (chunkBytes and its header fields).
const maxKeptBuf = chunkBytes + 128<<10

func newFrameReader(c net.Conn) *frameReader {
	return &frameReader{c: c, r: bufio.NewReaderSize(c, 64<<10)}
}

// next returns the next frame's method and payload (valid until the next
// call). errIdle: no frame began within magicTimeout; the caller keeps
// waiting (the wake-up lets it notice shutdown).
func (f *frameReader) next() (uint16, []byte, error) {
	if err := f.c.SetReadDeadline(time.Now().Add(magicTimeout)); err != nil {
		return 0, nil, err
	}
	// Peek, not read: a timeout with half a magic read must not lose it.
	m, err := f.r.Peek(2)
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return 0, nil, errIdle
		}
		return 0, nil, err
	}
	switch {
	case m[0] == poison[0] && m[1] == poison[1]:
		_, _ = f.r.Discard(2)
		return 0, nil, errPoison
	case m[0] != magic[0] || m[1] != magic[1]:
		return 0, nil, fmt.Errorf("%w: magic %x", ErrBadFrame, m)
	}
	if err := f.c.SetReadDeadline(time.Now().Add(headerTimeout)); err != nil {
		return 0, nil, err
	}
	if _, err := io.ReadFull(f.r, f.head[:]); err != nil {
		return 0, nil, err
	}
	hd, err := decodeHeader(f.head[2:])
	if err != nil {
		return 0, nil, err
	}
	// The payload is read chunkBytes at a time, each with its own
	// deadline, and the buffer grows only as bytes arrive: a header is 20
	// bytes anyone reaching the port can send, and a size in it must not
	// make this node allocate before the bytes exist. A frame that fits
	// the kept buffer's bound is allocated whole at once: a snapshot
	// chunk is a little over chunkBytes, and growing to chunkBytes first
	// reallocated and copied every chunk, then kept none (the grown
	// capacity is over the bound).
	body := f.buf[:0]
	if hd.size <= maxKeptBuf {
		body = slices.Grow(body, int(hd.size))
	}
	for uint64(len(body)) < hd.size {
		n := min(hd.size-uint64(len(body)), chunkBytes)
		if err := f.c.SetReadDeadline(time.Now().Add(chunkTimeout)); err != nil {
			return 0, nil, err
		}
		body = slices.Grow(body, int(n))
		part := body[len(body) : len(body)+int(n)]
		if _, err := io.ReadFull(f.r, part); err != nil {
			return 0, nil, err
		}
		body = body[:len(body)+int(n)]
	}
	if cap(body) <= maxKeptBuf {
		f.buf = body[:0] // kept for the next frame: snapshot chunks are all this size
	}
	if crc32.ChecksumIEEE(body) != hd.bodyCRC {
		return 0, nil, fmt.Errorf("%w: payload checksum", ErrBadFrame)
	}
	return hd.method, body, nil
}

func crcOf(b []byte) uint32 { return crc32.ChecksumIEEE(b) }

// FrameHeadSize is the bytes a frame starts with: magic and header.
const FrameHeadSize = frameHead

// CheckFrameStart reports whether b, at least FrameHeadSize bytes, starts
// a valid frame (magic, method, size, header checksum), without reading
// further: Skiff's Raft-port mux checks a connection's first frame before
// it hands the connection to the transport. Errors wrap ErrBadFrame.
func CheckFrameStart(b []byte) error {
	if len(b) < frameHead || b[0] != magic[0] || b[1] != magic[1] {
		return fmt.Errorf("%w: no magic", ErrBadFrame)
	}
	var h [headerSize]byte
	copy(h[:], b[2:frameHead]) // decodeHeader writes to its argument
	_, err := decodeHeader(h[:])
	return err
}
