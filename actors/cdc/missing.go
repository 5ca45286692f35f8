package cdc

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble"
)

// The missing range.
//
// A node that installs a Raft snapshot at index S never applies (so never
// captures) the entries between what it had and S. Installed records them
// as the missing range: (max(last index captured here, high-water mark),
// S], merged with one already recorded (lowest start, highest end). It is
// conservative: entries this node applied that changed no row are in it
// too, and a peer simply holds no group for them. The high-water mark
// trims it (what the sink acknowledged is not needed); Backfill stores the
// groups a peer supplied and shrinks it; the Service never transmits into
// it (service.go).
//
// Known window: the state machine commits the installed database before
// it calls Installed; a crash between the two (a few milliseconds) loses
// the range's record, and a restarted node would not know it missed them.

func missingValue(from, to uint64) []byte {
	v := make([]byte, 16)
	binary.BigEndian.PutUint64(v, from)
	binary.BigEndian.PutUint64(v[8:], to)
	return v
}

func (o *Outbox) loadMissing() error {
	v, c, err := o.db.Get(missingKey)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("%w: read %s: %w", ErrStorage, missingKey, err)
	}
	defer c.Close()
	if len(v) != 16 {
		return fmt.Errorf("%w: %s holds %d bytes", ErrStorage, missingKey, len(v))
	}
	o.missFrom, o.missTo = binary.BigEndian.Uint64(v), binary.BigEndian.Uint64(v[8:])
	return nil
}

// GapNotify is signalled when a snapshot install records a missing range.
func (o *Outbox) GapNotify() <-chan struct{} { return o.gap }

// Missing returns the range of indexes (inclusive) whose groups this node
// never captured and the sink has not acknowledged, if there is one.
func (o *Outbox) Missing() (from, to uint64, ok bool) {
	return o.missingAbove(o.hwm.Load())
}

// missingAbove is the missing range above hwm.
func (o *Outbox) missingAbove(hwm uint64) (from, to uint64, ok bool) {
	o.mu.Lock()
	from, to = o.missFrom, o.missTo
	o.mu.Unlock()
	if to == 0 {
		return 0, 0, false
	}
	from = max(from, hwm+1)
	if from > to {
		return 0, 0, false
	}
	return from, to, true
}

// Backfill stores groups a peer supplied as every group it holds in
// [from, to] (in index, request order) and shrinks the missing range by
// [from, to] when that covers its start. Writes are idempotent: a group
// stored already, or at or below the high-water mark, is skipped. One
// fsync per call.
func (o *Outbox) Backfill(from, to uint64, groups []Group) error {
	if from > to {
		return fmt.Errorf("%w: backfill range %d..%d is empty", ErrInvalidConfig, from, to)
	}
	if o.closed.Load() {
		return ErrClosed
	}
	o.writeMu.Lock()
	defer o.writeMu.Unlock()
	hwm := o.hwm.Load()
	b := o.db.NewBatch()
	defer b.Close()
	var added, addedBytes int64
	var first, last uint64
	for _, g := range groups {
		if g.Index < from || g.Index > to {
			return fmt.Errorf("%w: backfill of %d..%d holds group %d/%d", ErrStorage, from, to, g.Index, g.Request)
		}
		if g.Index <= hwm {
			continue
		}
		k := groupKey(g.Index, g.Request)
		_, c, err := o.db.Get(k)
		if err == nil {
			c.Close()
			continue
		}
		if !errors.Is(err, pebble.ErrNotFound) {
			return fmt.Errorf("%w: read group %d/%d: %w", ErrStorage, g.Index, g.Request, err)
		}
		v := make([]byte, valueHeader, valueHeader+len(g.Events))
		binary.BigEndian.PutUint64(v, uint64(g.CommitTime))
		v = append(v, g.Events...)
		if err := b.Set(k, v, nil); err != nil {
			return fmt.Errorf("%w: %w", ErrStorage, err)
		}
		added++
		addedBytes += int64(len(v))
		if first == 0 {
			first = g.Index
		}
		last = g.Index
	}
	mf, mt, ok := o.missingAbove(hwm)
	shrink := ok && from <= mf && to >= mf
	var nf, nt uint64
	if shrink {
		if to < mt {
			nf, nt = to+1, mt
		}
		var err error
		if nt == 0 {
			err = b.Delete(missingKey, nil)
		} else {
			err = b.Set(missingKey, missingValue(nf, nt), nil)
		}
		if err != nil {
			return fmt.Errorf("%w: %w", ErrStorage, err)
		}
	}
	if b.Empty() {
		return nil
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("%w: write %d backfilled groups: %w", ErrStorage, len(groups), err)
	}
	o.mu.Lock()
	o.st.Groups += added
	o.st.Bytes += addedBytes
	if added > 0 {
		if o.st.First == 0 || first < o.st.First {
			o.st.First = first
		}
		o.st.Last = max(o.st.Last, last)
	}
	if shrink {
		o.missFrom, o.missTo = nf, nt
		o.maxWritten = max(o.maxWritten, to)
	}
	o.mu.Unlock()
	o.wake(o.notify)
	return nil
}

// skipMissing gives up the missing range through to (the Service found
// no voter that holds it): it is no longer waited for.
func (o *Outbox) skipMissing(to uint64) error {
	if o.closed.Load() {
		return ErrClosed
	}
	o.writeMu.Lock()
	defer o.writeMu.Unlock()
	o.mu.Lock()
	nf, nt := o.missFrom, o.missTo
	o.mu.Unlock()
	if nt == 0 {
		return nil
	}
	if to >= nt {
		nf, nt = 0, 0
	} else {
		nf = max(nf, to+1)
	}
	var err error
	if nt == 0 {
		err = o.db.Delete(missingKey, pebble.Sync)
	} else {
		err = o.db.Set(missingKey, missingValue(nf, nt), pebble.Sync)
	}
	if err != nil {
		return fmt.Errorf("%w: record the skipped range: %w", ErrStorage, err)
	}
	o.mu.Lock()
	o.missFrom, o.missTo = nf, nt
	o.maxWritten = max(o.maxWritten, to)
	o.mu.Unlock()
	o.wake(o.notify)
	return nil
}

// GroupIter streams the stored groups of a range from one consistent view
// of the outbox (Groups). Not safe for concurrent use.
type GroupIter struct {
	o                   *Outbox
	it                  *pebble.Iterator
	idx                 uint64
	req                 uint32
	begun, done, closed bool
	err                 error
}

// Groups returns an iterator over the stored groups of [from, to], in
// (index, request) order, reading one at a time (bounded memory). The
// caller must Close it; the outbox's Close waits for that.
func (o *Outbox) Groups(from, to uint64) (*GroupIter, error) {
	if from > to || to == ^uint64(0) {
		return nil, fmt.Errorf("%w: group range %d..%d", ErrInvalidConfig, from, to)
	}
	if !o.itMu.TryRLock() {
		return nil, ErrClosed
	}
	if o.closed.Load() {
		o.itMu.RUnlock()
		return nil, ErrClosed
	}
	it := o.db.NewIter(&pebble.IterOptions{LowerBound: groupKey(from, 0), UpperBound: groupKey(to+1, 0)})
	return &GroupIter{o: o, it: it}, nil
}

// Next moves to the next group; false at the end, after Close, or on an
// error (Err).
func (g *GroupIter) Next() bool {
	if g.closed || g.done || g.err != nil {
		return false
	}
	if g.o.closed.Load() {
		g.err = ErrClosed
		return false
	}
	var ok bool
	if !g.begun {
		g.begun = true
		ok = g.it.First()
	} else {
		ok = g.it.Next()
	}
	for ; ok; ok = g.it.Next() {
		if idx, req, valid := parseGroupKey(g.it.Key()); valid {
			g.idx, g.req = idx, req
			return true
		}
	}
	g.done = true
	if err := g.it.Error(); err != nil {
		g.err = fmt.Errorf("%w: read groups: %w", ErrStorage, err)
	}
	return false
}

// Group returns the current group's index, request and stored value (its
// commit time and encoded events), valid until the next Next.
func (g *GroupIter) Group() (index uint64, request uint32, value []byte) {
	return g.idx, g.req, g.it.Value()
}

// Err is the error that ended the iteration, if any.
func (g *GroupIter) Err() error { return g.err }

// Close releases the view. Closing twice is harmless.
func (g *GroupIter) Close() error {
	if g.closed {
		return nil
	}
	g.closed = true
	err := g.it.Close()
	g.o.itMu.RUnlock()
	if err != nil {
		return fmt.Errorf("%w: close group iterator: %w", ErrStorage, err)
	}
	return nil
}
