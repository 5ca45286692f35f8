package bootstrap

import (
	"bufio"
	"encoding/binary"
	"hash/crc32"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"go.uber.org/zap"
)

// The Raft port carries Raft's connections (first byte 0xAE), served by the
// transport on the accepting goroutine, and HTTP for the node-to-node
// routes.
func TestRaftMuxSplitsRaftFromHTTP(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m := newRaftMux(ln, echoRaft, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "peer "+r.URL.Path)
	}), zap.NewNop())
	m.start()
	defer m.close()

	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	wantRaftEcho(t, c)

	// A snapshot stream aborted before its first chunk opens with the
	// poison (0x00 0x00), and is Raft's too.
	p, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if _, err := p.Write([]byte{0, 0}); err != nil {
		t.Fatal(err)
	}
	_ = p.SetReadDeadline(time.Now().Add(10 * time.Second))
	ack := make([]byte, 2)
	if _, err := io.ReadFull(p, ack); err != nil || ack[0] != 0 || ack[1] != 0 {
		t.Fatalf("a connection opening with the poison did not reach Raft: %v, %v", ack, err)
	}

	resp, err := (&http.Client{Timeout: 10 * time.Second}).Get("http://" + ln.Addr().String() + "/skiff/node")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(bufio.NewReader(resp.Body))
	resp.Body.Close()
	if string(body) != "peer /skiff/node" {
		t.Fatalf("http answer %q", body)
	}
}

// A Dragonboat connection may stay silent a long while before its first
// byte (its snapshot sender connects before the state machine has produced
// the first chunk): the mux must keep it, and hand it to Raft once the bytes
// come. A connection silent past firstByte is closed.
func TestRaftMuxKeepsSilentConnections(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m := newRaftMux(ln, echoRaft, http.NotFoundHandler(), zap.NewNop())
	m.firstByte = 3 * time.Second
	m.start()
	defer m.close()

	silent, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	time.Sleep(time.Second) // silent, but within firstByte
	msg := testFrame([]byte{1, 2, 3})
	if _, err := silent.Write(msg); err != nil {
		t.Fatal(err)
	}
	_ = silent.SetReadDeadline(time.Now().Add(10 * time.Second))
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(silent, got); err != nil || string(got) != string(msg) {
		t.Fatalf("a connection silent for a while was not handed to Raft: %q, %v", got, err)
	}
	// Raft connections may then idle as long as they like.
	time.Sleep(m.firstByte + time.Second)
	if _, err := silent.Write(msg); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(silent, got); err != nil {
		t.Fatalf("a Raft connection was cut while idle: %v", err)
	}

	// Silent past firstByte: closed.
	mute, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer mute.Close()
	_ = mute.SetReadDeadline(time.Now().Add(m.firstByte + 10*time.Second))
	if _, err := mute.Read(make([]byte, 1)); err == nil {
		t.Fatal("a connection silent past firstByte got bytes instead of a close")
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("a connection silent past firstByte was not closed")
	}
}

// Past the bound on silent connections the oldest is closed, not the new
// one: idle connections cannot lock real peers out.
func TestRaftMuxClosesOldestSilent(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m := newRaftMux(ln, func(net.Conn) bool { return false }, http.NotFoundHandler(), zap.NewNop())
	m.silentCap = 2
	m.start()
	defer m.close()
	var conns []net.Conn
	for i := range 3 {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns = append(conns, c)
		if i < 2 {
			time.Sleep(100 * time.Millisecond) // distinct arrival times
		}
	}
	_ = conns[0].SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := conns[0].Read(make([]byte, 1)); err == nil {
		t.Fatal("the oldest silent connection got bytes")
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("the oldest silent connection was not closed")
	}
	// The newest is still served: it speaks HTTP.
	_ = conns[2].SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := conns[2].Write([]byte("GET /x HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 12)
	if _, err := io.ReadFull(conns[2], buf); err != nil || string(buf) != "HTTP/1.1 404" {
		t.Fatalf("newest connection: %q, %v", buf, err)
	}
}

// testFrame is a Raft message frame (raftnet's wire format) carrying
// payload, as a peer's first frame.
func testFrame(payload []byte) []byte {
	f := make([]byte, 20, 20+len(payload))
	f[0], f[1] = 0xAE, 0x7D
	binary.BigEndian.PutUint16(f[2:], 100)
	binary.BigEndian.PutUint64(f[4:], uint64(len(payload)))
	binary.BigEndian.PutUint32(f[16:], crc32.ChecksumIEEE(payload))
	binary.BigEndian.PutUint32(f[12:], crc32.ChecksumIEEE(f[2:20]))
	return append(f, payload...)
}

// echoRaft stands in for the Raft transport: it echoes what it reads,
// the peeked first byte included.
func echoRaft(c net.Conn) bool {
	defer c.Close()
	buf := make([]byte, 512)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			if _, werr := c.Write(buf[:n]); werr != nil {
				return true
			}
		}
		if err != nil {
			return true
		}
	}
}

// wantRaftEcho sends a Raft frame on c and wants it echoed (the test muxes
// serve Raft connections with an echo).
func wantRaftEcho(t *testing.T, c net.Conn) {
	t.Helper()
	msg := testFrame([]byte("raft"))
	if _, err := c.Write(msg); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil || string(got) != string(msg) {
		t.Fatalf("raft bytes came back as %q, %v", got, err)
	}
}
