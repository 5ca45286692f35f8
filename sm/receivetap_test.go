package sm

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/golang/snappy"
	pb "github.com/lni/dragonboat/v4/raftpb"
	"go.uber.org/zap/zaptest"
)

// tapBlockSize is Dragonboat's snapshot block (settings.SnapshotChunkSize).
const tapBlockSize = 2 << 20

// dragonboatChunks frames stream as Dragonboat's ChunkWriter does at the
// version in go.mod (internal/rsm chunkwriter.go, rwv.go; the transport
// hands the receiver these chunks): the empty session block and the
// stream, compressed or not, cut into blocks each followed by its
// CRC-32 (IEEE), the first behind the 1 KiB header; then the 16-byte
// tail block and an empty last chunk. key sets the chunks' identity.
func dragonboatChunks(t testing.TB, stream []byte, ct pb.CompressionType, key tapKey) []pb.Chunk {
	t.Helper()
	var payload bytes.Buffer
	var sess [tapEmptySession]byte
	binary.LittleEndian.PutUint64(sess[:], 4096) // session slots; the count stays 0
	if ct == pb.Snappy {
		w := snappy.NewBufferedWriter(&payload)
		_, _ = w.Write(sess[:])
		_, _ = w.Write(stream)
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	} else {
		payload.Write(sess[:])
		payload.Write(stream)
	}
	h := pb.SnapshotHeader{Version: tapSnapshotV2, ChecksumType: pb.CRC32IEEE, CompressionType: ct,
		PayloadChecksum: []byte{0, 0, 0, 0}}
	hb, err := h.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	header := make([]byte, tapDBHeaderSize)
	binary.LittleEndian.PutUint64(header, uint64(len(hb)))
	copy(header[8:], hb)
	mk := func(id uint64, data []byte) pb.Chunk {
		return pb.Chunk{ShardID: key.shard, ReplicaID: key.replica, From: key.from, Index: key.index, Term: key.term,
			ChunkId: id, FileChunkId: id, Data: data}
	}
	var out []pb.Chunk
	p := payload.Bytes()
	for len(p) > 0 {
		n := min(len(p), tapBlockSize)
		var data []byte
		if len(out) == 0 {
			data = append(data, header...)
		}
		data = append(data, p[:n]...)
		data = binary.BigEndian.AppendUint32(data, crc32.ChecksumIEEE(p[:n]))
		out = append(out, mk(uint64(len(out)), data))
		p = p[n:]
	}
	tail := binary.LittleEndian.AppendUint64(nil, uint64(payload.Len()))
	tail = append(tail, 0x3F, 0x5B, 0xCB, 0xF1, 0xFA, 0xBA, 0x81, 0x9F)
	out = append(out, mk(uint64(len(out)), tail))
	last := mk(uint64(len(out)), nil)
	last.ChunkCount = pb.LastChunkCount
	return append(out, last)
}

// savedStream returns a snapshot stream of a database of about mb MiB of
// incompressible rows and repeated ones, and its dump.
func savedStream(t *testing.T, mb int) ([]byte, string) {
	t.Helper()
	src := newHarness(t)
	src.apply(cmd("a", false, "CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)"))
	for i := range mb {
		src.apply(cmd(fmt.Sprint("r", i), false,
			"WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i < 128) INSERT INTO t (v) SELECT randomblob(4096) FROM c",
			"WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i < 128) INSERT INTO t (v) SELECT zeroblob(4096) FROM c"))
	}
	return src.snapshotStream(), dump(t, src)
}

// tappedHarness opens a state machine whose installs may claim tap's files.
func tappedHarness(t testing.TB) (*harness, *ReceiveTap) {
	t.Helper()
	h := &harness{t: t, dir: t.TempDir()}
	tap, err := NewReceiveTap(Config{Dir: h.dir, Logger: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tap.Close)
	h.mod = func(c *Config) { c.Tap = tap }
	h.open()
	h.apply(cmd("old", false, "CREATE TABLE old (x)"))
	return h, tap
}

// waitTapReady waits until the tap holds a whole copy no install claimed.
func waitTapReady(t *testing.T, tap *ReceiveTap) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		tap.mu.Lock()
		ready := tap.ready != nil
		tap.mu.Unlock()
		if ready {
			return
		}
	}
	t.Fatal("the tap never finished its copy")
}

func tapFiles(t *testing.T, dir string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, tapFilePrefix+"*"))
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// The tap writes the database as the chunks arrive, and the install claims
// it: the same database as an install from the stream, and no file left.
// Whatever the tap could not follow (a corrupt block, a lost chunk, another
// index, the stream cut off) leaves the install to write the stream itself,
// with the same result.
func TestReceiveTapInstall(t *testing.T) {
	stream, want := savedStream(t, 5) // about 5 MiB: three blocks uncompressed
	key := tapKey{shard: 1, replica: 4, from: 1, index: 10, term: 2}
	for _, tc := range []struct {
		name    string
		ct      pb.CompressionType
		feed    func(chunks []pb.Chunk) []pb.Chunk
		claimed bool
	}{
		{name: "snappy", ct: pb.Snappy, claimed: true},
		{name: "uncompressed", ct: pb.NoCompression, claimed: true},
		{name: "corrupt block", ct: pb.NoCompression, feed: func(c []pb.Chunk) []pb.Chunk {
			c[1].Data = bytes.Clone(c[1].Data)
			c[1].Data[100] ^= 0xff
			return c
		}},
		{name: "chunk lost", ct: pb.NoCompression, feed: func(c []pb.Chunk) []pb.Chunk {
			return append(c[:1:1], c[2:]...)
		}},
		{name: "cut off", ct: pb.Snappy, feed: func(c []pb.Chunk) []pb.Chunk {
			// Snappy: the whole 5 MiB fits one compressed block; without
			// its last data chunk the stream ends early.
			return c[:len(c)-3]
		}},
		{name: "not a stream of Skiff's", ct: pb.NoCompression, feed: func(c []pb.Chunk) []pb.Chunk {
			c[0].Data = bytes.Clone(c[0].Data)
			c[0].Data[tapDBHeaderSize+tapEmptySession] ^= 0xff // the magic
			return c
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dst, tap := tappedHarness(t)
			chunks := dragonboatChunks(t, stream, tc.ct, key)
			if tc.feed != nil {
				chunks = tc.feed(chunks)
			}
			for _, ch := range chunks {
				tap.Chunk(ch)
			}
			if err := dst.s.RecoverFromSnapshot(bytes.NewReader(stream), make(chan struct{})); err != nil {
				t.Fatal(err)
			}
			if got := dump(t, dst); got != want {
				t.Fatalf("installed database differs:\n got %.200s\nwant %.200s", got, want)
			}
			if got := tap.Claimed(); (got == 1) != tc.claimed {
				t.Fatalf("claimed %d tapped files, want claimed=%v", got, tc.claimed)
			}
			if f := tapFiles(t, dst.dir); len(f) != 0 {
				t.Fatalf("tap files left: %v", f)
			}
		})
	}
}

// A second stream beginning while the first waits for its install (the
// leader sending the same state again) is not tapped, and the first is
// still claimed; nor is a stream of a state already applied; an install of
// another index claims nothing and drops the unclaimed copy.
func TestReceiveTapRepeatAndOtherIndex(t *testing.T) {
	stream, want := savedStream(t, 2)
	dst, tap := tappedHarness(t)
	a := tapKey{shard: 1, replica: 4, from: 1, index: 10, term: 2}
	b := a
	b.index = 11
	for _, ch := range dragonboatChunks(t, stream, pb.Snappy, a) {
		tap.Chunk(ch)
	}
	repeat := dragonboatChunks(t, stream, pb.Snappy, b)
	tap.Chunk(repeat[0])
	tap.Chunk(repeat[1])
	if err := dst.s.RecoverFromSnapshot(bytes.NewReader(stream), make(chan struct{})); err != nil {
		t.Fatal(err)
	}
	if tap.Claimed() != 1 || dump(t, dst) != want {
		t.Fatalf("claimed %d, want the first stream's copy", tap.Claimed())
	}

	// Right after that install, and at any time for a snapshot at or
	// below what the state machine applied (Dragonboat drops those), a
	// stream is not tapped.
	for i, tc := range []struct {
		index uint64
		at    time.Time
	}{{index: 1000, at: time.Now()}, {index: dst.s.Applied()}} {
		tap.mu.Lock()
		tap.claimedAt = tc.at
		tap.mu.Unlock()
		old := tapKey{shard: 1, replica: 4, from: uint64(10 + i), index: tc.index, term: 3}
		tap.Chunk(dragonboatChunks(t, stream, pb.Snappy, old)[0])
		tap.mu.Lock()
		tapped := tap.cur != nil
		tap.mu.Unlock()
		if tapped {
			t.Fatalf("a stream at index %d (applied %d, claim %v ago) was tapped", tc.index, dst.s.Applied(), time.Since(tc.at))
		}
	}

	// A copy of another state than the install's is not used.
	other, otherWant := savedStream(t, 1)
	for _, ch := range dragonboatChunks(t, stream, pb.Snappy, tapKey{shard: 1, replica: 4, from: 2, index: 20, term: 3}) {
		tap.Chunk(ch)
	}
	waitTapReady(t, tap)
	if err := dst.s.RecoverFromSnapshot(bytes.NewReader(other), make(chan struct{})); err != nil {
		t.Fatal(err)
	}
	if tap.Claimed() != 1 || dump(t, dst) != otherWant {
		t.Fatalf("claimed %d after an install of another state", tap.Claimed())
	}
	if f := tapFiles(t, dst.dir); len(f) != 0 {
		t.Fatalf("tap files left: %v", f)
	}
}

// Close stops a stream half-way and removes its file; chunks after Close
// are ignored.
func TestReceiveTapCloseRemovesFiles(t *testing.T) {
	stream, _ := savedStream(t, 5)
	dir := t.TempDir()
	tap, err := NewReceiveTap(Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	chunks := dragonboatChunks(t, stream, pb.NoCompression, tapKey{shard: 1, replica: 4, from: 1, index: 10, term: 2})
	tap.Chunk(chunks[0])
	tap.Chunk(chunks[1])
	tap.Close()
	for _, ch := range chunks[2:] {
		tap.Chunk(ch)
	}
	if f := tapFiles(t, dir); len(f) != 0 {
		t.Fatalf("tap files left after Close: %v", f)
	}
	if _, err := os.Stat(dir); err != nil {
		t.Fatal(err)
	}
}

// A whole copy no install claimed is replaced by the next stream once its
// hold has passed: its file goes, and at most one copy is kept.
func TestReceiveTapStaleCopyReplaced(t *testing.T) {
	stream, _ := savedStream(t, 1)
	_, tap := tappedHarness(t)
	first := tapKey{shard: 1, replica: 4, from: 1, index: 10, term: 2}
	for _, ch := range dragonboatChunks(t, stream, pb.Snappy, first) {
		tap.Chunk(ch)
	}
	waitTapReady(t, tap)
	tap.mu.Lock()
	old := tap.ready.res.path
	tap.ready.finishedAt = time.Now().Add(-tapReadyHold)
	tap.mu.Unlock()
	second := first
	second.from, second.index = 2, 12
	tap.Chunk(dragonboatChunks(t, stream, pb.Snappy, second)[0])
	if _, err := os.Stat(old); !os.IsNotExist(err) {
		t.Fatalf("the stale copy %s is still there (%v)", old, err)
	}
	tap.mu.Lock()
	tapped := tap.cur != nil && tap.ready == nil
	tap.mu.Unlock()
	if !tapped {
		t.Fatal("the new stream was not tapped in the stale copy's place")
	}
}

// BenchmarkReceiveTap feeds a tap a Snappy-framed stream of a database of
// SKIFF_BENCH_TAP_MB (default 64) MB, from memory and as fast as the tap
// takes its chunks, and times it until its copy is whole (decoded,
// checksummed, written behind and fsynced), against cp+sync of the same
// database file in the same rounds: the joiner's write stage alone, with
// no leader and no network. Run it with -benchtime 1x or more.
func BenchmarkReceiveTap(b *testing.B) {
	src := newHarness(b)
	loadBenchRows(src, benchMB("SKIFF_BENCH_TAP_MB"))
	key := tapKey{shard: 1, replica: 4, from: 1, index: 10, term: 2}
	chunks := dragonboatChunks(b, src.snapshotStream(), pb.Snappy, key)
	size := float64(fileSize(src.s.path)) / 1e6
	var took, cpSync time.Duration
	for range b.N {
		_, tap := tappedHarness(b)
		t0 := time.Now()
		for _, ch := range chunks {
			tap.Chunk(ch)
		}
		for {
			tap.mu.Lock()
			ready := tap.ready != nil
			tap.mu.Unlock()
			if ready {
				break
			}
			if time.Since(t0) > 5*time.Minute {
				b.Fatal("the tap never finished its copy")
			}
			time.Sleep(time.Millisecond)
		}
		took += time.Since(t0)
		cpSync += timeCPSync(b, src.s.path)
	}
	n := float64(b.N)
	b.ReportMetric(size, "file_MB")
	b.ReportMetric(took.Seconds()/n, "tap_s")
	b.ReportMetric(size/(took.Seconds()/n), "tap_MB/s")
	b.ReportMetric(cpSync.Seconds()/n, "cp_sync_s")
	b.ReportMetric(took.Seconds()/cpSync.Seconds(), "tap_x_cp_sync")
}
