package sm

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang/snappy"
	pb "github.com/lni/dragonboat/v4/raftpb"
	"go.uber.org/zap"

	"github.com/skiffdb/skiff/sm/failpoint"
)

// ReceiveTap writes the database a snapshot stream carries while the stream
// is still arriving, so that the install no longer waits for the whole
// stream and then rewrites it (docs/recovery.md, "The receive tap").
//
// Dragonboat receives a stream into a file of its own and calls
// RecoverFromSnapshot only once the last chunk is in; reading that file
// back, undoing its compression and writing the database used to take as
// long again as the stream. The Raft transport hands the tap every chunk
// Dragonboat accepted (raftnet Config.ChunkTap), in order; the tap strips
// Dragonboat's framing, undoes the compression and writes Skiff's stream
// into a temporary file of the replica directory with the same checks as
// RecoverFromSnapshot: the CRC-32C of the SQLite bytes against the
// sender's, one fsync at the end. RecoverFromSnapshot then claims the file
// if it holds the database at the index and size its own stream's header
// names, and installs it as it would its own copy; otherwise (no tap, a
// stream the tap lost track of, any error) it writes its copy as before.
// The file is never live before that install, so a crash or a broken
// stream costs only the speculative work: the next Open removes the file.
//
// Which stream the bytes came from does not matter: any stream whose
// bytes match their sender's checksum and whose header and database both
// name index i holds the state machine's state at i.
//
// A tap is a handle: Chunk is called by the transport's receiving
// goroutines, claim by RecoverFromSnapshot, Close once at shutdown, each
// directly; one decoding goroutine per stream writes the file.
type ReceiveTap struct {
	cfg Config
	log *zap.Logger

	mu sync.Mutex
	// cur is the stream being fed; ready a stream written whole that no
	// install claimed yet. Either may be nil.
	cur, ready *tapStream
	seq        uint64
	closed     bool
	wg         sync.WaitGroup

	// claimed counts the installs that used a tapped file (tests, logs).
	claimed atomic.Uint64
	// owner is the state machine whose installs claim the copies, once
	// open; claimedAt is when the last claim began (guarded by mu).
	owner     atomic.Pointer[StateMachine]
	claimedAt time.Time
}

// attach names s as the state machine the tap writes for: a stream of a
// snapshot at or below its applied index is one Dragonboat will drop
// (raft.go restore: "ss.Index <= committed"), not worth writing.
func (t *ReceiveTap) attach(s *StateMachine) {
	if t != nil {
		t.owner.Store(s)
	}
}

// Dragonboat's streamed snapshot (lni/dragonboat/v4 internal/rsm,
// chunkwriter.go and rwv.go at the version in go.mod): the first chunk
// starts with a header of tapDBHeaderSize bytes (an 8-byte length, a
// SnapshotHeader, its CRC); every chunk then carries one block of the
// compressed stream followed by a 4-byte block checksum. Dragonboat checks
// those a block behind (its last blocks only at the last chunk), so the
// tap relies on its own checks: the Snappy frames' CRCs and Skiff's
// CRC-32C of the whole database (a stream Dragonboat rejects is never
// installed anyway). The last data chunk is a 16-byte
// tail without a checksum, after the end of the compressed stream, so the
// decoder never reads it; the very last chunk is empty.
const (
	tapDBHeaderSize  = 1024
	tapBlockChecksum = 4
	tapSnapshotV2    = 2
	tapEmptySession  = 16
	tapFilePrefix    = "tap-"
)

// tapStallLimit bounds how long one chunk may wait for the tap's writer:
// well inside the sender's deadline for a chunk (raftnet writeFrame, 12 s
// for 2 MiB).
const tapStallLimit = 3 * time.Second

// tapQueue is how many chunks (2 MiB each at most) may wait for the
// writer: each adds its size to the joiner's peak memory (8 added 30–60
// MiB to the 1 GB soak's peak RSS; the sender waiting for the last chunk
// to be handled, raftnet's SendChunk, keeps the leader from sending the
// database again however deep the queue is). tapQuiet is how long a
// stream may go without a chunk before a new stream replaces it in the
// tap (its sender is most likely gone).
const (
	tapQueue = 4
	tapQuiet = 2 * time.Second
)

// tapReadyHold is how long a whole copy waiting for its install keeps a
// new stream from being tapped (the new one is most likely a repeat of
// it). Past that, the copy's install is not coming (Dragonboat found its
// stream out of date) and a new stream is tapped, replacing it.
const tapReadyHold = 10 * time.Second

var (
	errTapDone = errors.New("tap: stream no longer read")
)

// tapStream is one stream being written by its decoding goroutine.
type tapStream struct {
	key  tapKey
	next uint64
	// complete: the last chunk came; finishedAt: when the decoder
	// filed it (both guarded by the tap's mu).
	complete   bool
	finishedAt time.Time
	// in queues the compressed stream's blocks for the writer; inputEnd is
	// closed when no more will come (the last chunk, or a claim).
	in        chan []byte
	inputEnd  chan struct{}
	inputOnce sync.Once
	// lastChunk is when the last chunk came (guarded by the tap's mu).
	lastChunk time.Time
	// abandon ends the decoder (receiveFile's stopc); done is closed when
	// it returned, after res is set.
	abandon     chan struct{}
	abandonOnce sync.Once
	done        chan struct{}
	// header is set by the decoder once it read Skiff's stream header;
	// headerC is closed then, or when the decoder returns without one.
	header     atomic.Pointer[tapHeader]
	headerC    chan struct{}
	headerOnce sync.Once
	res        tapResult
}

type tapHeader struct {
	index uint64
	size  int64
}

type tapResult struct {
	path         string
	index        uint64
	size         int64
	write, fsync time.Duration
	err          error
}

type tapKey struct{ shard, replica, from, index, term uint64 }

func keyOf(ch pb.Chunk) tapKey {
	return tapKey{ch.ShardID, ch.ReplicaID, ch.From, ch.Index, ch.Term}
}

func (st *tapStream) stop()       { st.abandonOnce.Do(func() { close(st.abandon) }) }
func (st *tapStream) endInput()   { st.inputOnce.Do(func() { close(st.inputEnd) }) }
func (st *tapStream) headerDone() { st.headerOnce.Do(func() { close(st.headerC) }) }

// queueReader reads a stream's queued blocks in order; after inputEnd it
// returns what is still queued, then io.ErrUnexpectedEOF (a whole stream
// is read to its trailer before that).
type queueReader struct {
	st  *tapStream
	cur []byte
}

func (q *queueReader) Read(p []byte) (int, error) {
	for len(q.cur) == 0 {
		select {
		case b := <-q.st.in:
			q.cur = b
		case <-q.st.inputEnd:
			select {
			case b := <-q.st.in:
				q.cur = b
			default:
				return 0, io.ErrUnexpectedEOF
			}
		case <-q.st.abandon:
			return 0, errTapDone
		}
	}
	n := copy(p, q.cur)
	q.cur = q.cur[n:]
	return n, nil
}

// NewReceiveTap returns a tap that writes into cfg.Dir, the directory of
// the state machine whose Config names it as Tap.
func NewReceiveTap(cfg Config) (*ReceiveTap, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("create %s: %w", cfg.Dir, err)
	}
	return &ReceiveTap{cfg: cfg, log: cfg.Logger}, nil
}

// Chunk takes a chunk Dragonboat accepted. It queues the chunk's bytes for
// the stream's writer and returns; it waits only when tapQueue chunks are
// queued already, so the transport keeps the writer's pace but reads a
// stream's last chunks, and Dragonboat records the snapshot, without
// waiting for the writer to catch up (a joiner that records it late makes
// the leader send the whole database again: docs/recovery.md).
func (t *ReceiveTap) Chunk(ch pb.Chunk) {
	if ch.HasFileInfo || ch.Witness || ch.IsPoisonChunk() || (ch.ChunkCount != 0 && ch.ChunkCount != pb.LastChunkCount) {
		// External files, a witness's, or a snapshot sent from a file
		// (its chunks carry a count and do not line up with blocks): not
		// a stream Skiff's SaveSnapshot wrote.
		return
	}
	now := time.Now()
	if ch.ChunkId == 0 && t.cfg.Failpoints.Inject(failpoint.SMReceiveTap, nil) != nil {
		t.mu.Lock()
		if t.cur != nil {
			t.cur.stop()
			t.cur = nil
		}
		t.mu.Unlock()
		return
	}
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return
	}
	st := t.cur
	if ch.ChunkId == 0 {
		if t.busyLocked(keyOf(ch), now) {
			// The stream before is still arriving, or has all its input
			// and is being written or waits for its install. The new one
			// is most likely Dragonboat sending the same state again
			// because the install had not begun yet; should it be
			// installed after all, the install writes it as before.
			t.mu.Unlock()
			return
		}
		if st != nil {
			st.stop()
			t.log.Info("snapshot stream tap restarted: the stream began again, or another after it went quiet",
				zap.Uint64("index", ch.Index), zap.Uint64("from", ch.From))
		}
		if t.ready != nil {
			// busyLocked found it stale: its install is not coming.
			_ = os.Remove(t.ready.res.path)
			t.ready = nil
		}
		st = t.startLocked(ch)
		t.cur = st
		if st == nil {
			t.mu.Unlock()
			return
		}
	} else if st == nil || st.key != keyOf(ch) {
		t.mu.Unlock()
		return // a stream the tap does not follow
	} else if st.next != ch.ChunkId {
		// Dragonboat accepts chunks only in order; anything else means the
		// tap missed one and its copy cannot be whole.
		st.stop()
		t.cur = nil
		t.mu.Unlock()
		return
	}
	st.next = ch.ChunkId + 1
	st.lastChunk = now
	if ch.IsLastChunk() {
		st.complete = true
		t.mu.Unlock()
		st.endInput()
		return
	}
	t.mu.Unlock()

	data := ch.Data
	if ch.ChunkId == 0 {
		data = data[tapDBHeaderSize:]
	}
	if len(data) < tapBlockChecksum {
		return // the tail (after the compressed stream's end): nothing to write
	}
	block := data[:len(data)-tapBlockChecksum]
	select {
	case st.in <- block:
		return
	default:
	}
	// A disk too slow to keep up must not hold the stream past its
	// sender's deadline: the tap gives the stream up instead, and the
	// install writes it from Dragonboat's file as before.
	stall := time.NewTimer(tapStallLimit)
	defer stall.Stop()
	select {
	case st.in <- block:
	case <-st.inputEnd:
	case <-st.abandon:
	case <-stall.C:
		t.log.Info("snapshot stream tap gave up: its writer fell behind the stream", zap.Duration("waited", tapStallLimit))
		st.stop()
	}
}

// StreamEnded is told that the connection that carried last, a stream's
// last chunk so far, ended. Unless that was the stream's last chunk, the
// stream will not go on (its sender failed or died, and will send again
// if it can): the tap gives it up, and its file goes.
func (t *ReceiveTap) StreamEnded(last pb.Chunk) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if st := t.cur; st != nil && st.key == keyOf(last) && !st.complete && st.next == last.ChunkId+1 {
		st.stop()
		t.cur = nil
	}
}

// busyLocked reports whether a new stream, with key, is not worth tapping:
// one of a snapshot the state machine has applied, one beginning while an
// install from a copy is under way, or because of a stream the tap holds:
// one with all its input, another stream still
// arriving (a chunk within tapQuiet), or a whole copy not yet claimed (for
// tapReadyHold: past that its install is not coming, Dragonboat having
// found it out of date).
func (t *ReceiveTap) busyLocked(key tapKey, now time.Time) bool {
	if o := t.owner.Load(); o != nil && key.index <= o.applied.Load() {
		return true
	}
	if now.Sub(t.claimedAt) < tapQuiet {
		return true // an install from a copy is under way
	}
	if st := t.cur; st != nil {
		switch {
		case st.complete:
			return true
		case st.key == key:
			// Dragonboat drops a stream whose first chunk comes again
			// (transport chunk.go record): so does the tap.
			return false
		case now.Sub(st.lastChunk) < tapQuiet:
			return true
		}
	}
	if r := t.ready; r != nil {
		if o := t.owner.Load(); o != nil && r.res.index <= o.applied.Load() {
			return false // applied past it: Dragonboat will not install it
		}
		return now.Sub(r.finishedAt) < tapReadyHold
	}
	return false
}

// startLocked parses the first chunk's Dragonboat header and starts the
// stream's decoder; nil if the stream is not one the tap can follow.
func (t *ReceiveTap) startLocked(ch pb.Chunk) *tapStream {
	hdr, err := parseDBHeader(ch.Data)
	if err != nil {
		t.log.Debug("snapshot stream not tapped", zap.Error(err))
		return nil
	}
	t.seq++
	path := filepath.Join(t.cfg.Dir, tapFilePrefix+strconv.FormatUint(t.seq, 10)+tmpSuffix)
	st := &tapStream{key: keyOf(ch), in: make(chan []byte, tapQueue), inputEnd: make(chan struct{}),
		abandon: make(chan struct{}), done: make(chan struct{}), headerC: make(chan struct{})}
	var r io.Reader = &queueReader{st: st}
	if hdr.CompressionType == pb.Snappy {
		r = snappy.NewReader(r)
	}
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		st.res = t.decode(st, r, path)
		st.headerDone()
		// Unblocks a transport goroutine waiting to queue the tail.
		st.stop()
		t.finished(st)
		close(st.done)
	}()
	return st
}

// parseDBHeader checks the Dragonboat header at the start of a stream's
// first chunk.
func parseDBHeader(data []byte) (pb.SnapshotHeader, error) {
	var h pb.SnapshotHeader
	if len(data) < tapDBHeaderSize+tapBlockChecksum {
		return h, fmt.Errorf("%w: first chunk of %d bytes", ErrSnapshotFormat, len(data))
	}
	n := binary.LittleEndian.Uint64(data)
	if n == 0 || n > tapDBHeaderSize-8-tapBlockChecksum {
		return h, fmt.Errorf("%w: header length %d", ErrSnapshotFormat, n)
	}
	if err := h.Unmarshal(data[8 : 8+n]); err != nil {
		return h, fmt.Errorf("%w: header: %w", ErrSnapshotFormat, err)
	}
	if h.Version != tapSnapshotV2 {
		return h, fmt.Errorf("%w: snapshot version %d", ErrSnapshotFormat, h.Version)
	}
	if h.CompressionType != pb.NoCompression && h.CompressionType != pb.Snappy {
		return h, fmt.Errorf("%w: compression %v", ErrSnapshotFormat, h.CompressionType)
	}
	return h, nil
}

// decode reads Dragonboat's session block and Skiff's stream from r and
// writes the database to path, fsynced; the file is removed on failure.
func (t *ReceiveTap) decode(st *tapStream, r io.Reader, path string) tapResult {
	res := tapResult{path: path}
	// A streamed snapshot starts with an empty session block: the number
	// of session slots, then a session count of zero.
	var sess [tapEmptySession]byte
	if _, err := io.ReadFull(r, sess[:]); err != nil {
		res.err = fmt.Errorf("%w: session block: %w", ErrSnapshotFormat, err)
		return res
	}
	if binary.LittleEndian.Uint64(sess[8:]) != 0 {
		res.err = fmt.Errorf("%w: a streamed snapshot with sessions", ErrSnapshotFormat)
		return res
	}
	var hdr [headerSize]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		res.err = fmt.Errorf("%w: header: %w", ErrSnapshotFormat, err)
		return res
	}
	index, size, err := parseStreamHeader(hdr[:])
	if err != nil {
		res.err = err
		return res
	}
	res.index, res.size = index, size
	st.header.Store(&tapHeader{index: index, size: size})
	st.headerDone()
	chunk := func() error { return t.cfg.Failpoints.Inject(failpoint.SMSnapshotInstall, st.abandon) }
	began := time.Now()
	res.fsync, res.err = receiveFile(r, path, size, true, st.abandon, chunk, func(int64) {})
	res.write = time.Since(began) - res.fsync
	if res.err != nil {
		_ = os.Remove(path)
	}
	return res
}

// finished files a stream its decoder is done with: whole, it is ready to
// be claimed (replacing an older unclaimed one); otherwise forgotten.
func (t *ReceiveTap) finished(st *tapStream) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.cur == st {
		t.cur = nil
	}
	if st.res.err != nil {
		t.log.Info("snapshot stream tap gave up; the install will write the stream", zap.Error(st.res.err))
		return
	}
	if t.closed {
		_ = os.Remove(st.res.path)
		return
	}
	if t.ready != nil {
		_ = os.Remove(t.ready.res.path)
	}
	st.finishedAt = time.Now()
	t.ready = st
}

// claim returns the path of a whole, fsynced copy of the database at index
// of size bytes, which the caller now owns, or false. RecoverFromSnapshot
// calls it after Dragonboat received the stream's last chunk, so a stream
// still being decoded has all its input: claim ends its input and waits
// for its decoder (or for stopc).
func (t *ReceiveTap) claim(index uint64, size int64, stopc <-chan struct{}) (tapResult, bool) {
	if t == nil {
		return tapResult{}, false
	}
	if res, ok := t.claimReady(index, size); ok {
		return res, true
	}
	t.mu.Lock()
	st := t.cur
	t.mu.Unlock()
	if st == nil {
		return tapResult{}, false
	}
	// The stream's first chunk is queued already; its header is read
	// soon, if the decoder has not read it yet. (The install can begin
	// before the tap has seen the stream's last chunk.)
	select {
	case <-st.headerC:
	case <-stopc:
		return tapResult{}, false
	}
	t.mu.Lock()
	if t.cur != st {
		// Finished meanwhile (and filed as ready), or replaced.
		t.mu.Unlock()
		return t.claimReady(index, size)
	}
	if h := st.header.Load(); h == nil || h.index != index || h.size != size {
		// Another stream (a newer one arriving while an older file is
		// installed): let it go on.
		t.mu.Unlock()
		return tapResult{}, false
	}
	t.cur = nil
	t.claimedAt = time.Now()
	t.mu.Unlock()
	st.endInput()
	stopped := false
	select {
	case <-st.done:
	case <-stopc:
		stopped = true
		st.stop()
		<-st.done
	}
	t.mu.Lock()
	if t.ready == st {
		t.ready = nil
	}
	t.mu.Unlock()
	if st.res.err != nil {
		return tapResult{}, false
	}
	if stopped {
		_ = os.Remove(st.res.path)
		return tapResult{}, false
	}
	return st.res, true
}

// claimReady takes the whole copy waiting for its install if it holds the
// database at index of size bytes; a copy of another state is dropped (an
// install of another index means it is of no later use).
func (t *ReceiveTap) claimReady(index uint64, size int64) (tapResult, bool) {
	t.mu.Lock()
	r := t.ready
	t.ready = nil
	match := r != nil && r.res.index == index && r.res.size == size
	if match {
		t.claimedAt = time.Now()
	}
	t.mu.Unlock()
	if r == nil {
		return tapResult{}, false
	}
	if match {
		return r.res, true
	}
	_ = os.Remove(r.res.path)
	return tapResult{}, false
}

// Claimed reports how many installs used a file the tap wrote.
func (t *ReceiveTap) Claimed() uint64 {
	if t == nil {
		return 0
	}
	return t.claimed.Load()
}

// Close stops any stream being decoded, removes its file and any
// unclaimed one, and waits for the decoders. Call it after the transport
// stopped calling Chunk.
func (t *ReceiveTap) Close() {
	if t == nil {
		return
	}
	t.mu.Lock()
	t.closed = true
	if t.cur != nil {
		t.cur.stop()
		t.cur = nil
	}
	if t.ready != nil {
		_ = os.Remove(t.ready.res.path)
		t.ready = nil
	}
	t.mu.Unlock()
	t.wg.Wait()
}
