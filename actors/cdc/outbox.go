package cdc

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble"
	"go.uber.org/zap"

	"github.com/skiffdb/skiff/sm"
)

// Outbox keys. Groups sort by (index, request), big endian, after the
// one-byte prefix; meta keys are outside the group range.
const (
	groupPrefix = 'g'
	groupKeyLen = 1 + 8 + 4
	// wakeCap is the capacity of the wake-up channels: one pending
	// wake-up covers every later one (the woken reads the current state).
	wakeCap = 1
)

var (
	hwmKey   = []byte("m/hwm")
	floorKey = []byte("m/floor")
	ackedKey = []byte("m/acked")
	// missingKey holds the missing range (from, to: 16 bytes), absent
	// when none (missing.go).
	missingKey = []byte("m/missing")
	// startKey holds the index the state machine was at when this outbox
	// was created (Opened): what it applied up to there it never captured.
	startKey = []byte("m/start")
	// groupEnd bounds every group key from above.
	groupEnd = []byte{groupPrefix + 1}
)

func groupKey(index uint64, req uint32) []byte {
	k := make([]byte, groupKeyLen)
	k[0] = groupPrefix
	binary.BigEndian.PutUint64(k[1:], index)
	binary.BigEndian.PutUint32(k[9:], req)
	return k
}

func parseGroupKey(k []byte) (uint64, uint32, bool) {
	if len(k) != groupKeyLen || k[0] != groupPrefix {
		return 0, 0, false
	}
	return binary.BigEndian.Uint64(k[1:]), binary.BigEndian.Uint32(k[9:]), true
}

func u64(v uint64) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, v)
	return b
}

// OutboxStats are the outbox's maintained counters.
type OutboxStats struct {
	// Groups and Bytes are the backlog: groups stored (above the
	// high-water mark, until pruned) and their stored size.
	Groups, Bytes int64
	// First and Last are the lowest and highest index stored (0: none).
	First, Last uint64
	// HighWater is the replicated high-water mark this node applied.
	HighWater uint64
	// Floor is the index of the last snapshot installed here: groups up to
	// it that this node did not capture before are missing.
	Floor uint64
	// Acked is the highest index this node's Service delivered.
	Acked uint64
	// Captures and CaptureNanos count Capture calls and the time they
	// took (the fsync included).
	Captures, CaptureNanos int64
}

// Outbox is the node's durable CDC queue in Pebble: a handle whose Capture,
// HighWater and Installed are called on the apply goroutine (sm.ChangeSink)
// and whose Range and SetAcked are called by the Service. A goroutine of
// its own prunes below the high-water mark.
type Outbox struct {
	db  *pebble.DB
	log *zap.Logger

	hwm    atomic.Uint64
	floor  atomic.Uint64
	acked  atomic.Uint64
	closed atomic.Bool

	mu sync.Mutex // guards the counters below
	st OutboxStats
	// maxWritten is the highest index ever written: a group at or below
	// it may be a re-write (a re-apply after a crash) and is checked.
	maxWritten uint64
	// missFrom..missTo (inclusive) is the missing range as recorded
	// (missTo 0: none); Missing raises its start to the high-water mark.
	missFrom, missTo uint64
	// fresh: the outbox has not been told (Opened) where capture began;
	// captureStart is that index.
	fresh        bool
	captureStart atomic.Uint64

	// writeMu orders the writes of the missing range and keeps Backfill
	// and the pruner apart (the pruner counts what it deletes).
	writeMu sync.Mutex
	// itMu is read-held by every open GroupIter; Close takes it so that
	// the store never closes under one.
	itMu sync.RWMutex

	captures, captureNanos atomic.Int64

	// notify wakes the transmitter; prune wakes the pruner; gap wakes
	// the backfill (wakeCap).
	notify chan struct{}
	gap    chan struct{}
	prune  chan struct{}
	stop   chan struct{}
	done   chan struct{}
	once   sync.Once
}

var _ sm.ChangeSink = (*Outbox)(nil)

type pebbleLogger struct{ s *zap.SugaredLogger }

func (p pebbleLogger) Infof(f string, a ...any)  { p.s.Debugf(f, a...) }
func (p pebbleLogger) Fatalf(f string, a ...any) { p.s.Fatalf(f, a...) }

// OpenOutbox opens (or creates) the outbox in dir. Its counters are
// rebuilt from one scan of the stored keys.
func OpenOutbox(dir string, log *zap.Logger) (*Outbox, error) {
	if dir == "" {
		return nil, fmt.Errorf("%w: outbox directory is empty", ErrInvalidConfig)
	}
	if log == nil {
		log = zap.NewNop()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("%w: create %s: %w", ErrStorage, dir, err)
	}
	db, err := pebble.Open(dir, &pebble.Options{Logger: pebbleLogger{log.Named("pebble").Sugar()}})
	if err != nil {
		return nil, fmt.Errorf("%w: open %s: %w", ErrStorage, dir, err)
	}
	o := &Outbox{db: db, log: log, notify: make(chan struct{}, wakeCap), prune: make(chan struct{}, wakeCap), gap: make(chan struct{}, wakeCap),
		stop: make(chan struct{}), done: make(chan struct{})}
	if err := o.load(); err != nil {
		db.Close()
		return nil, err
	}
	go o.pruner()
	if o.hwm.Load() > 0 {
		o.wake(o.prune)
	}
	return o, nil
}

func (o *Outbox) getU64(k []byte) (uint64, error) {
	v, c, err := o.db.Get(k)
	if errors.Is(err, pebble.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("%w: read %s: %w", ErrStorage, k, err)
	}
	defer c.Close()
	if len(v) != 8 {
		return 0, fmt.Errorf("%w: %s holds %d bytes", ErrStorage, k, len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}

func (o *Outbox) load() error {
	for _, m := range []struct {
		k []byte
		v *atomic.Uint64
	}{{hwmKey, &o.hwm}, {floorKey, &o.floor}, {ackedKey, &o.acked}} {
		v, err := o.getU64(m.k)
		if err != nil {
			return err
		}
		m.v.Store(v)
	}
	if err := o.loadMissing(); err != nil {
		return err
	}
	_, c, err := o.db.Get(startKey)
	switch {
	case err == nil:
		c.Close()
		v, err := o.getU64(startKey)
		if err != nil {
			return err
		}
		o.captureStart.Store(v)
	case errors.Is(err, pebble.ErrNotFound):
		o.fresh = true
	default:
		return fmt.Errorf("%w: read %s: %w", ErrStorage, startKey, err)
	}
	it := o.db.NewIter(&pebble.IterOptions{LowerBound: []byte{groupPrefix}, UpperBound: groupEnd})
	for it.First(); it.Valid(); it.Next() {
		idx, _, ok := parseGroupKey(it.Key())
		if !ok {
			continue
		}
		if o.st.First == 0 {
			o.st.First = idx
		}
		o.st.Last = idx
		o.st.Groups++
		o.st.Bytes += int64(len(it.Value()))
	}
	if err := it.Close(); err != nil {
		return fmt.Errorf("%w: scan: %w", ErrStorage, err)
	}
	o.maxWritten = o.st.Last
	return nil
}

var _ sm.OpenedSink = (*Outbox)(nil)

// Opened records, the first time the state machine opens with this
// outbox, the index it opened at: this node applied the entries up to it
// without capturing them (CDC was turned on later, or the outbox was
// lost), so its peer handler never vouches for them. Once per outbox.
func (o *Outbox) Opened(applied uint64) {
	o.mu.Lock()
	fresh := o.fresh
	o.fresh = false
	o.mu.Unlock()
	if !fresh || o.closed.Load() {
		return
	}
	o.captureStart.Store(applied)
	if err := o.db.Set(startKey, u64(applied), pebble.Sync); err != nil {
		o.log.Error("could not record where CDC capture began", zap.Uint64("applied", applied), zap.Error(err))
	}
}

func (o *Outbox) wake(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// Notify is signalled after each Capture that stored something.
func (o *Outbox) Notify() <-chan struct{} { return o.notify }

// Capture stores groups durably (fsynced) in one batch before it returns,
// skipping those at or below the high-water mark. A group stored already
// (a re-apply after a crash) is overwritten with the same bytes.
func (o *Outbox) Capture(groups []sm.ChangeGroup) error {
	if len(groups) == 0 {
		return nil
	}
	if o.closed.Load() {
		return ErrClosed
	}
	start := time.Now()
	hwm := o.hwm.Load()
	o.mu.Lock()
	maxWritten := o.maxWritten
	o.mu.Unlock()
	b := o.db.NewBatch()
	defer b.Close()
	var added, addedBytes int64
	var first, last uint64
	for _, g := range groups {
		if g.Index <= hwm {
			continue
		}
		v, err := encodeGroup(g)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrStorage, err)
		}
		k := groupKey(g.Index, g.Request)
		isNew := true
		if g.Index <= maxWritten {
			old, c, err := o.db.Get(k)
			switch {
			case err == nil:
				isNew = false
				addedBytes -= int64(len(old))
				c.Close()
			case !errors.Is(err, pebble.ErrNotFound):
				return fmt.Errorf("%w: read group %d/%d: %w", ErrStorage, g.Index, g.Request, err)
			}
		}
		if err := b.Set(k, v, nil); err != nil {
			return fmt.Errorf("%w: %w", ErrStorage, err)
		}
		addedBytes += int64(len(v))
		if isNew {
			added++
		}
		if first == 0 {
			first = g.Index
		}
		last = g.Index
	}
	if b.Empty() {
		return nil
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("%w: write %d groups: %w", ErrStorage, len(groups), err)
	}
	o.mu.Lock()
	o.st.Groups += added
	o.st.Bytes += addedBytes
	if o.st.First == 0 || first < o.st.First {
		o.st.First = first
	}
	o.st.Last = max(o.st.Last, last)
	o.maxWritten = max(o.maxWritten, last)
	o.mu.Unlock()
	o.captures.Add(1)
	o.captureNanos.Add(int64(time.Since(start)))
	o.wake(o.notify)
	return nil
}

func storeMax(v *atomic.Uint64, n uint64) bool {
	for {
		cur := v.Load()
		if n <= cur {
			return false
		}
		if v.CompareAndSwap(cur, n) {
			return true
		}
	}
}

// HighWater records the replicated high-water mark and wakes the pruner;
// it does not block.
func (o *Outbox) HighWater(hwm uint64) {
	if storeMax(&o.hwm, hwm) {
		o.wake(o.prune)
		o.wake(o.notify)
	}
}

// Installed records that a snapshot at index was installed: groups up to
// it that were not captured before never will be. The range they span is
// missing (missing.go): it is recorded, with the floor, and fsynced before
// Installed returns (once per install), so that a restart still knows it.
func (o *Outbox) Installed(index uint64) {
	storeMax(&o.floor, index)
	if o.closed.Load() {
		return
	}
	o.writeMu.Lock()
	defer o.writeMu.Unlock()
	o.mu.Lock()
	start := max(o.maxWritten, o.hwm.Load()) + 1
	if start <= index {
		if o.missTo == 0 {
			o.missFrom, o.missTo = start, index
		} else {
			o.missFrom, o.missTo = min(o.missFrom, start), max(o.missTo, index)
		}
	}
	from, to := o.missFrom, o.missTo
	o.mu.Unlock()
	b := o.db.NewBatch()
	defer b.Close()
	err := b.Set(floorKey, u64(o.floor.Load()), nil)
	if err == nil && to != 0 {
		err = b.Set(missingKey, missingValue(from, to), nil)
	}
	if err == nil {
		err = b.Commit(pebble.Sync)
	}
	if err != nil {
		o.log.Error("could not record the CDC range missing after a snapshot install", zap.Uint64("index", index),
			zap.Uint64("from", from), zap.Uint64("to", to), zap.Error(err))
	}
	if to != 0 {
		o.log.Info("snapshot installed past changes not captured here; they will be fetched from a peer",
			zap.Uint64("snapshot_index", index), zap.Uint64("missing_from", from), zap.Uint64("missing_to", to))
		o.wake(o.gap)
	}
}

// HighWaterMark is the high-water mark this node applied.
func (o *Outbox) HighWaterMark() uint64 { return o.hwm.Load() }

// Floor is the index of the last snapshot installed here.
func (o *Outbox) Floor() uint64 { return o.floor.Load() }

// Acked is the highest index this node delivered (SetAcked).
func (o *Outbox) Acked() uint64 { return o.acked.Load() }

// SetAcked records that the sink acknowledged every index up to i, so that
// a restarted leader does not send them again before the high-water mark
// covers them.
func (o *Outbox) SetAcked(i uint64) error {
	if !storeMax(&o.acked, i) {
		return nil
	}
	if o.closed.Load() {
		return ErrClosed
	}
	if err := o.db.Set(ackedKey, u64(i), pebble.NoSync); err != nil {
		return fmt.Errorf("%w: record acked index: %w", ErrStorage, err)
	}
	return nil
}

// Range returns the stored groups from index from on, in order: those of
// at most maxIndexes indexes, and no more than maxBytes of events unless
// the first index alone is larger (an index is never split).
func (o *Outbox) Range(from uint64, maxIndexes, maxBytes int) ([]Group, error) {
	if o.closed.Load() {
		return nil, ErrClosed
	}
	it := o.db.NewIter(&pebble.IterOptions{LowerBound: groupKey(from, 0), UpperBound: groupEnd})
	var out []Group
	var indexes, size int
	var cur uint64
	for it.First(); it.Valid(); it.Next() {
		idx, req, ok := parseGroupKey(it.Key())
		if !ok {
			continue
		}
		if idx != cur {
			if indexes >= maxIndexes || (indexes > 0 && size >= maxBytes) {
				break
			}
			indexes++
			cur = idx
		}
		g, err := decodeGroup(idx, req, append([]byte(nil), it.Value()...))
		if err != nil {
			it.Close()
			return nil, err
		}
		out = append(out, g)
		size += len(g.Events)
	}
	if err := it.Close(); err != nil {
		return nil, fmt.Errorf("%w: read from %d: %w", ErrStorage, from, err)
	}
	return out, nil
}

// Stats returns the counters; safe at any time, after Close too.
func (o *Outbox) Stats() OutboxStats {
	o.mu.Lock()
	st := o.st
	o.mu.Unlock()
	st.HighWater, st.Floor, st.Acked = o.hwm.Load(), o.floor.Load(), o.acked.Load()
	st.Captures, st.CaptureNanos = o.captures.Load(), o.captureNanos.Load()
	return st
}

func (o *Outbox) pruner() {
	defer close(o.done)
	var pruned uint64
	for {
		select {
		case <-o.stop:
			return
		case <-o.prune:
		}
		hwm := o.hwm.Load()
		if hwm <= pruned {
			continue
		}
		o.writeMu.Lock()
		err := o.pruneTo(hwm)
		o.writeMu.Unlock()
		if err != nil {
			// Retried at the next high-water mark; the backlog only grows.
			o.log.Error("could not prune the CDC outbox", zap.Uint64("hwm", hwm), zap.Error(err))
			continue
		}
		pruned = hwm
	}
}

// pruneTo deletes every group at or below hwm. Capture never writes there
// (it skips groups at or below the mark), so counting first and deleting
// next races with nothing.
func (o *Outbox) pruneTo(hwm uint64) error {
	end := groupKey(hwm+1, 0)
	it := o.db.NewIter(&pebble.IterOptions{LowerBound: []byte{groupPrefix}, UpperBound: end})
	var n, size int64
	for it.First(); it.Valid(); it.Next() {
		n++
		size += int64(len(it.Value()))
	}
	if err := it.Close(); err != nil {
		return err
	}
	b := o.db.NewBatch()
	defer b.Close()
	if n > 0 {
		if err := b.DeleteRange([]byte{groupPrefix}, end, nil); err != nil {
			return err
		}
	}
	if err := b.Set(hwmKey, u64(hwm), nil); err != nil {
		return err
	}
	o.mu.Lock()
	covered := o.missTo != 0 && hwm >= o.missTo
	o.mu.Unlock()
	if covered {
		// The sink acknowledged the whole missing range.
		if err := b.Delete(missingKey, nil); err != nil {
			return err
		}
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		return err
	}
	// The new first index is looked up under the lock, so that a Capture
	// landing meanwhile cannot leave First pointing at a pruned index.
	o.mu.Lock()
	defer o.mu.Unlock()
	it = o.db.NewIter(&pebble.IterOptions{LowerBound: end, UpperBound: groupEnd})
	var first uint64
	if it.First() {
		first, _, _ = parseGroupKey(it.Key())
	}
	if err := it.Close(); err != nil {
		return err
	}
	o.st.Groups -= n
	o.st.Bytes -= size
	o.st.First = first
	if covered {
		o.missFrom, o.missTo = 0, 0
	}
	if first == 0 {
		o.st.Last = 0
	}
	return nil
}

// Close stops the pruner and closes the store; it is called after the
// state machine stopped (no more Capture). Closing twice is harmless.
func (o *Outbox) Close() error {
	var err error
	o.once.Do(func() {
		o.closed.Store(true)
		close(o.stop)
		<-o.done
		// Wait for the peer handler's iterators (they stop at their next
		// group once closed is set).
		o.itMu.Lock()
		defer o.itMu.Unlock()
		err = o.db.Close()
	})
	return err
}
