package cdc

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/skiffdb/skiff/bootstrap/nodetls"
)

// The peer protocol: a node with a missing range asks another voter, on
// the Raft port's peer handler,
//
//	GET PeerPath?from=F&to=T
//
// The peer answers 200 only if it can vouch for every group in [F, T]
// that the sink has not acknowledged: it applied T, and no missing range
// of its own meets (its high-water mark, T]. The header HeaderFrom gives
// the first index the body covers, max(F, its high-water mark + 1): every
// index below was acknowledged (the mark is replicated), so the asker
// needs nothing there. The body is a sequence of frames, from one
// consistent view of the peer's outbox, in (index, request) order:
//
//	'g' index(8) request(4) length(4) value(length)   one stored group
//	'e' count(8)                                       the end: count groups
//
// (big endian; a value is exactly what the outbox stores). A body without
// the end frame was cut off: the asker keeps only the indexes it saw
// followed by a later one. 503 means not yet (the peer has not applied T),
// 409 means it cannot (it installed a snapshot past them too, or applied
// them before its outbox existed).
const (
	// PeerPath is the route of the peer handler.
	PeerPath = "/skiff/cdc/groups"
	// HeaderFrom is the response header holding the first index covered.
	HeaderFrom = "X-Skiff-Cdc-From"

	frameGroup = 'g'
	frameEnd   = 'e'
	// maxFrameValue bounds one group's value read from a peer.
	maxFrameValue = 256 << 20
	// backfillChunkBytes is how many fetched bytes are stored per
	// Backfill call (bounded memory).
	backfillChunkBytes = 4 << 20
	peerContentType    = "application/x-skiff-cdc-groups"
)

// errRefused is a peer's 409: it cannot vouch for the range.
var errRefused = errors.New("peer cannot supply the range")

// PeerHandler serves PeerPath from this outbox. applied returns the index
// this node's state machine last committed (lifecycle's published state):
// every group up to it was durable before it was published.
func (o *Outbox) PeerHandler(applied func() uint64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			http.Error(w, "GET only", http.StatusMethodNotAllowed)
			return
		}
		q := r.URL.Query()
		from, err1 := strconv.ParseUint(q.Get("from"), 10, 64)
		to, err2 := strconv.ParseUint(q.Get("to"), 10, 64)
		if err1 != nil || err2 != nil || from == 0 || from > to || to == ^uint64(0) {
			http.Error(w, "from and to must be indexes, 0 < from <= to", http.StatusBadRequest)
			return
		}
		if a := applied(); a < to {
			http.Error(w, fmt.Sprintf("applied %d, below %d", a, to), http.StatusServiceUnavailable)
			return
		}
		it, err := o.Groups(from, to)
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		defer it.Close()
		// Read after the view was taken: the pruner deletes at or below a
		// mark stored before it ran, so the view holds every group above
		// this one.
		hwm := o.hwm.Load()
		start := max(from, hwm+1)
		if mf, mt, ok := o.missingAbove(hwm); ok && start <= to && mf <= to && mt >= start {
			http.Error(w, fmt.Sprintf("missing %d..%d here too", mf, mt), http.StatusConflict)
			return
		}
		if cs := o.captureStart.Load(); start <= to && cs >= start {
			http.Error(w, fmt.Sprintf("this node applied up to %d before it captured", cs), http.StatusConflict)
			return
		}
		w.Header().Set("Content-Type", peerContentType)
		w.Header().Set(HeaderFrom, strconv.FormatUint(start, 10))
		w.WriteHeader(http.StatusOK)
		bw := bufio.NewWriterSize(w, 64<<10)
		var hdr [17]byte
		var n uint64
		for it.Next() {
			idx, req, v := it.Group()
			if idx < start {
				continue
			}
			hdr[0] = frameGroup
			binary.BigEndian.PutUint64(hdr[1:], idx)
			binary.BigEndian.PutUint32(hdr[9:], req)
			binary.BigEndian.PutUint32(hdr[13:], uint32(len(v)))
			if _, err := bw.Write(hdr[:]); err != nil {
				return
			}
			if _, err := bw.Write(v); err != nil {
				return
			}
			n++
		}
		if it.Err() != nil {
			// No end frame: the asker sees a cut-off stream.
			_ = bw.Flush()
			return
		}
		hdr[0] = frameEnd
		binary.BigEndian.PutUint64(hdr[1:], n)
		if _, err := bw.Write(hdr[:9]); err != nil {
			return
		}
		_ = bw.Flush()
	})
}

// defaultPeerClient fetches from peers (bootstrap passes the node's one
// peer client instead): the body may be long, so the client bounds only
// the connection and the TLS handshake, and fetchRange the wait for the
// header (headerTimeout).
func defaultPeerClient(peerTLS *tls.Config) *http.Client {
	return nodetls.NewPeerClient(peerTLS, 0)
}

// headerTimeout bounds the wait for a peer's response header.
const headerTimeout = 10 * time.Second

// fetchRange asks the peer at base (its URL without a path) for [from,
// to] and stores what it sends with store, a chunk of about chunkBytes at
// a time, each chunk [cf, ct] complete. It returns nil once the whole
// range is stored; errRefused on a 409; another error otherwise (what was
// stored before it stays, and is complete).
func fetchRange(ctx context.Context, c *http.Client, base string, from, to uint64, chunkBytes int,
	store func(from, to uint64, gs []Group) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s%s?from=%d&to=%d", base, PeerPath, from, to), nil)
	if err != nil {
		return err
	}
	// The client has no header timeout (it is shared): a peer that
	// accepts and then says nothing is cut here.
	noHeader := time.AfterFunc(headerTimeout, func() { cancel(fmt.Errorf("no response header within %s", headerTimeout)) })
	resp, err := c.Do(req)
	noHeader.Stop()
	if err != nil {
		if cause := context.Cause(ctx); cause != nil && ctx.Err() != nil {
			return fmt.Errorf("%w: %w", err, cause)
		}
		return err
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusConflict:
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("%w: %s", errRefused, trimMsg(msg))
	default:
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("%s: %s", resp.Status, trimMsg(msg))
	}
	start, err := strconv.ParseUint(resp.Header.Get(HeaderFrom), 10, 64)
	// start past to: the peer's mark covers the whole range.
	if err != nil || start < from {
		return fmt.Errorf("bad %s header %q for %d..%d", HeaderFrom, resp.Header.Get(HeaderFrom), from, to)
	}
	br := bufio.NewReaderSize(resp.Body, 64<<10)
	var (
		hdr   [17]byte
		chunk []Group
		size  int
		cf    = from // the chunk's first index
		last  uint64 // the last group's index
		lastR uint32
		n     uint64
	)
	for {
		if _, err := io.ReadFull(br, hdr[:1]); err != nil {
			return fmt.Errorf("stream cut off after %d groups: %w", n, err)
		}
		switch hdr[0] {
		case frameEnd:
			if _, err := io.ReadFull(br, hdr[1:9]); err != nil {
				return fmt.Errorf("stream cut off in its end frame: %w", err)
			}
			if got := binary.BigEndian.Uint64(hdr[1:9]); got != n {
				return fmt.Errorf("peer says %d groups, sent %d", got, n)
			}
			return store(cf, to, chunk)
		case frameGroup:
		default:
			return fmt.Errorf("bad frame %q after %d groups", hdr[0], n)
		}
		if _, err := io.ReadFull(br, hdr[1:]); err != nil {
			return fmt.Errorf("stream cut off after %d groups: %w", n, err)
		}
		idx, req := binary.BigEndian.Uint64(hdr[1:]), binary.BigEndian.Uint32(hdr[9:])
		l := binary.BigEndian.Uint32(hdr[13:])
		if idx < start || idx > to || (n > 0 && (idx < last || (idx == last && req <= lastR))) || l < valueHeader || l > maxFrameValue {
			return fmt.Errorf("bad group %d/%d (%d bytes) after %d/%d in %d..%d", idx, req, l, last, lastR, start, to)
		}
		// Every group of the indexes before this one came: store them
		// once the chunk is large enough.
		if n > 0 && idx > last && size >= chunkBytes {
			if err := store(cf, last, chunk); err != nil {
				return err
			}
			cf, chunk, size = last+1, nil, 0
		}
		v := make([]byte, l)
		if _, err := io.ReadFull(br, v); err != nil {
			return fmt.Errorf("stream cut off in group %d/%d: %w", idx, req, err)
		}
		g, err := decodeGroup(idx, req, v)
		if err != nil {
			return err
		}
		chunk = append(chunk, g)
		size += int(l)
		last, lastR = idx, req
		n++
	}
}

func trimMsg(b []byte) string {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == ' ') {
		b = b[:len(b)-1]
	}
	return string(b)
}
