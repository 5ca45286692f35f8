package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"time"
)

// ErrInvalidConfig reports a Config that cannot run.
var ErrInvalidConfig = errors.New("invalid webhook config")

// Config is a receiver's configuration.
type Config struct {
	// Addr is the loopback address to listen on; "" picks a free port.
	Addr string
	// Path is the path the endpoint serves; other paths answer 404.
	Path string
	// Light skips decoding and checking: it only scans each body for its
	// "index" and "commit_timestamp" values (arrival, commit time and the
	// highest index), so that a benchmark's receiver costs next to
	// nothing. Delivered, Duplicates and Violations stay empty.
	Light bool
}

// WithDefaults fills zero fields.
func (c Config) WithDefaults() Config {
	if c.Addr == "" {
		c.Addr = "127.0.0.1:0"
	}
	if c.Path == "" {
		c.Path = "/cdc"
	}
	return c
}

// Validate reports whether c is usable.
func (c Config) Validate() error {
	if !strings.HasPrefix(c.Path, "/") {
		return fmt.Errorf("%w: path %q must start with /", ErrInvalidConfig, c.Path)
	}
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		return fmt.Errorf("%w: addr %q: %v", ErrInvalidConfig, c.Addr, err)
	}
	return nil
}

// Event is one row change (API.md §1.14): exactly rqlite's keys; a key
// the receiver does not know fails the decode. Values in Before and After
// are json.Number for numbers (see Normalize).
type Event struct {
	Op       string         `json:"op"`
	Table    string         `json:"table"`
	NewRowID int64          `json:"new_row_id"`
	OldRowID int64          `json:"old_row_id"`
	Before   map[string]any `json:"before"`
	After    map[string]any `json:"after"`
}

// Group is the events of one client request, under its Raft index.
type Group struct {
	Index           uint64  `json:"index"`
	CommitTimestamp int64   `json:"commit_timestamp"`
	Events          []Event `json:"events"`
}

// Envelope is one POST's body (rqlite's envelope).
type Envelope struct {
	NodeID    string  `json:"node_id"`
	ServiceID string  `json:"service_id"`
	Payload   []Group `json:"payload"`
}

// Decode decodes an envelope strictly: unknown keys and trailing data are
// errors, numbers inside row images stay json.Number.
func Decode(b []byte) (Envelope, error) {
	var env Envelope
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	dec.DisallowUnknownFields()
	if err := dec.Decode(&env); err != nil {
		return Envelope{}, fmt.Errorf("envelope: %w", err)
	}
	if dec.More() {
		return Envelope{}, errors.New("envelope: trailing data after the JSON object")
	}
	return env, nil
}

// Check reports what is wrong with an envelope's shape, whatever its
// place in the stream: an empty node_id or payload, a group without events
// or commit timestamp, an event whose op does not match the images and
// row IDs it carries (rowIDsOnly: images must be absent).
func Check(env Envelope, rowIDsOnly bool) []string {
	var bad []string
	if env.NodeID == "" {
		bad = append(bad, "envelope without node_id")
	}
	if len(env.Payload) == 0 {
		bad = append(bad, "envelope with an empty payload")
	}
	for _, g := range env.Payload {
		if g.Index == 0 {
			bad = append(bad, "group with index 0")
		}
		if g.CommitTimestamp <= 0 {
			bad = append(bad, fmt.Sprintf("index %d: commit_timestamp %d, want unix microseconds", g.Index, g.CommitTimestamp))
		}
		if len(g.Events) == 0 {
			bad = append(bad, fmt.Sprintf("index %d: a group without events (a request that changed no row yields no group)", g.Index))
		}
		for i, e := range g.Events {
			where := fmt.Sprintf("index %d event %d (%s %s)", g.Index, i, e.Op, e.Table)
			if e.Table == "" {
				bad = append(bad, where+": no table")
			}
			wantBefore, wantAfter := false, false
			switch e.Op {
			case "INSERT":
				wantAfter = true
				if e.NewRowID == 0 || e.OldRowID != 0 {
					bad = append(bad, fmt.Sprintf("%s: new_row_id %d old_row_id %d, want only new_row_id", where, e.NewRowID, e.OldRowID))
				}
			case "UPDATE":
				wantBefore, wantAfter = true, true
				if e.NewRowID == 0 || e.OldRowID == 0 {
					bad = append(bad, fmt.Sprintf("%s: new_row_id %d old_row_id %d, want both", where, e.NewRowID, e.OldRowID))
				}
			case "DELETE":
				wantBefore = true
				if e.NewRowID != 0 || e.OldRowID == 0 {
					bad = append(bad, fmt.Sprintf("%s: new_row_id %d old_row_id %d, want only old_row_id", where, e.NewRowID, e.OldRowID))
				}
			default:
				bad = append(bad, where+": op is not INSERT, UPDATE or DELETE")
			}
			if rowIDsOnly {
				wantBefore, wantAfter = false, false
			}
			if (e.Before != nil) != wantBefore || (e.After != nil) != wantAfter {
				bad = append(bad, fmt.Sprintf("%s: before %v after %v present, want %v and %v", where, e.Before != nil, e.After != nil, wantBefore, wantAfter))
			}
		}
	}
	return bad
}

// Dedup is a consumer's deduplication by index: it keeps the highest index
// processed and treats a group at or below it as a duplicate. It is not
// safe for concurrent use.
type Dedup struct {
	highest   uint64
	delivered []Group
	byIndex   map[uint64][]Group
	// Duplicates counts groups discarded as duplicates.
	Duplicates int
}

// Offer processes one envelope (one POST, or one NATS message) and returns
// the groups it delivered and what it saw wrong: a duplicate of an index
// never delivered (a gap: it was skipped when it was due), a duplicate
// whose content differs from the first delivery, or indexes going
// backwards among the new groups.
func (d *Dedup) Offer(env Envelope) (fresh []Group, bad []string) {
	if d.byIndex == nil {
		d.byIndex = map[uint64][]Group{}
	}
	base := d.highest
	dups := map[uint64][]Group{}
	var dupOrder []uint64
	for _, g := range env.Payload {
		if g.Index <= base {
			d.Duplicates++
			if _, ok := dups[g.Index]; !ok {
				dupOrder = append(dupOrder, g.Index)
			}
			dups[g.Index] = append(dups[g.Index], g)
			continue
		}
		if g.Index < d.highest {
			bad = append(bad, fmt.Sprintf("index %d after index %d in one envelope: not in index order", g.Index, d.highest))
			continue
		}
		d.highest = g.Index
		d.byIndex[g.Index] = append(d.byIndex[g.Index], g)
		d.delivered = append(d.delivered, g)
		fresh = append(fresh, g)
	}
	for _, idx := range dupOrder {
		prev, ok := d.byIndex[idx]
		switch {
		case !ok:
			bad = append(bad, fmt.Sprintf("index %d re-sent below the highest index delivered (%d) but never delivered before: a gap", idx, base))
		case !sameGroups(prev, dups[idx]):
			bad = append(bad, fmt.Sprintf("index %d re-sent with other content (or its groups split across envelopes):\n first: %s\n again: %s",
				idx, mustJSON(prev), mustJSON(dups[idx])))
		}
	}
	return fresh, bad
}

// Highest is the highest index delivered.
func (d *Dedup) Highest() uint64 { return d.highest }

// Delivered is every group delivered, in delivery order.
func (d *Dedup) Delivered() []Group { return append([]Group(nil), d.delivered...) }

// sameGroups compares groups ignoring the commit timestamp, which a node
// sets at its own apply (a new leader re-sends what it captured itself).
func sameGroups(a, b []Group) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Index != b[i].Index || !reflect.DeepEqual(a[i].Events, b[i].Events) {
			return false
		}
	}
	return true
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprintf("%v", v)
	}
	return string(b)
}

// Post is one POST the receiver answered.
type Post struct {
	At        time.Time
	Status    int
	NodeID    string
	ServiceID string
	Groups    int
	First     uint64 // index of the first group
	Last      uint64 // index of the last group
	// Duplicates counts the groups of this POST at or below the highest
	// index delivered before it.
	Duplicates int
}

// Receiver is a running webhook endpoint.
type Receiver struct {
	cfg Config
	ln  net.Listener
	srv *http.Server
	url string
	// RowIDsOnly makes Check expect no row images; set before traffic.
	RowIDsOnly bool

	mu         sync.Mutex
	failing    bool
	dedup      Dedup
	posts      []Post
	refused    int
	violations []string
	arrival    map[uint64]time.Time
	commit     map[uint64]int64 // commit_timestamp of each index's first delivery
	lightHigh  uint64           // Light: the highest index seen
	changed    chan struct{}    // closed and replaced on every delivery
	served     sync.WaitGroup
}

// New starts a receiver.
func New(cfg Config) (*Receiver, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("webhook listen %s: %w", cfg.Addr, err)
	}
	r := &Receiver{cfg: cfg, ln: ln, url: "http://" + ln.Addr().String() + cfg.Path,
		arrival: map[uint64]time.Time{}, commit: map[uint64]int64{}, changed: make(chan struct{})}
	mux := http.NewServeMux()
	mux.HandleFunc(cfg.Path, r.handle)
	r.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	r.served.Add(1)
	go func() {
		defer r.served.Done()
		_ = r.srv.Serve(ln)
	}()
	return r, nil
}

// URL is the endpoint's URL, for -cdc-config.
func (r *Receiver) URL() string { return r.url }

// Close stops the server and waits for its goroutines.
func (r *Receiver) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := r.srv.Shutdown(ctx)
	r.served.Wait()
	return err
}

// SetFailing makes every POST answer 500 (true) or be processed (false).
func (r *Receiver) SetFailing(on bool) {
	r.mu.Lock()
	r.failing = on
	r.mu.Unlock()
}

func (r *Receiver) handle(w http.ResponseWriter, req *http.Request) {
	at := time.Now()
	if req.Method != http.MethodPost {
		r.violate(fmt.Sprintf("%s %s, want POST", req.Method, req.URL.Path))
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(req.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.failing {
		r.refused++
		r.posts = append(r.posts, Post{At: at, Status: http.StatusInternalServerError})
		http.Error(w, "failing on purpose", http.StatusInternalServerError)
		return
	}
	if r.cfg.Light {
		r.lightScan(body, at)
		w.WriteHeader(http.StatusOK)
		return
	}
	if ct := req.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		r.violations = append(r.violations, fmt.Sprintf("Content-Type %q, want application/json", ct))
	}
	env, err := Decode(body)
	if err != nil {
		// A consumer that cannot read a batch refuses it; the sender
		// must retry it, so the gap checks still hold.
		r.violations = append(r.violations, fmt.Sprintf("%v: %.500s", err, body))
		r.posts = append(r.posts, Post{At: at, Status: http.StatusBadRequest})
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r.violations = append(r.violations, Check(env, r.RowIDsOnly)...)
	dups := r.dedup.Duplicates
	fresh, bad := r.dedup.Offer(env)
	r.violations = append(r.violations, bad...)
	p := Post{At: at, Status: http.StatusOK, NodeID: env.NodeID, ServiceID: env.ServiceID, Groups: len(env.Payload),
		Duplicates: r.dedup.Duplicates - dups}
	if n := len(env.Payload); n > 0 {
		p.First, p.Last = env.Payload[0].Index, env.Payload[n-1].Index
	}
	r.posts = append(r.posts, p)
	for _, g := range fresh {
		if _, ok := r.arrival[g.Index]; !ok {
			r.arrival[g.Index] = at
			r.commit[g.Index] = g.CommitTimestamp
		}
	}
	if len(fresh) > 0 {
		close(r.changed)
		r.changed = make(chan struct{})
	}
	w.WriteHeader(http.StatusOK)
}

// lightScan records the indexes of a body without decoding it: each
// payload entry starts {"index":N,"commit_timestamp":T (rqlite's key
// order). Called with mu held.
func (r *Receiver) lightScan(body []byte, at time.Time) {
	const idxKey, tsKey = `{"index":`, `"commit_timestamp":`
	fresh := false
	for rest := body; ; {
		i := bytes.Index(rest, []byte(idxKey))
		if i < 0 {
			break
		}
		rest = rest[i+len(idxKey):]
		idx, n := leadingUint(rest)
		rest = rest[n:]
		var ts int64
		if bytes.HasPrefix(rest, []byte(","+tsKey)) {
			v, m := leadingUint(rest[len(tsKey)+1:])
			ts = int64(v)
			rest = rest[len(tsKey)+1+m:]
		}
		if _, ok := r.arrival[idx]; !ok && idx > 0 {
			r.arrival[idx], r.commit[idx] = at, ts
		}
		if idx > r.lightHigh {
			r.lightHigh, fresh = idx, true
		}
	}
	r.posts = append(r.posts, Post{At: at, Status: http.StatusOK})
	if fresh {
		close(r.changed)
		r.changed = make(chan struct{})
	}
}

// leadingUint parses the decimal digits at the start of b.
func leadingUint(b []byte) (v uint64, n int) {
	for n < len(b) && b[n] >= '0' && b[n] <= '9' {
		v = v*10 + uint64(b[n]-'0')
		n++
	}
	return v, n
}

func (r *Receiver) violate(s string) {
	r.mu.Lock()
	r.violations = append(r.violations, s)
	r.mu.Unlock()
}

// Highest is the highest index delivered.
func (r *Receiver) Highest() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.highest()
}

// highest is Highest with mu held.
func (r *Receiver) highest() uint64 {
	if r.cfg.Light {
		return r.lightHigh
	}
	return r.dedup.Highest()
}

// Delivered is every group delivered after deduplication, in order.
func (r *Receiver) Delivered() []Group {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.dedup.Delivered()
}

// Duplicates counts groups discarded as duplicates.
func (r *Receiver) Duplicates() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.dedup.Duplicates
}

// Posts is every POST answered, in order.
func (r *Receiver) Posts() []Post {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Post(nil), r.posts...)
}

// Refused counts POSTs answered 500 by SetFailing.
func (r *Receiver) Refused() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.refused
}

// Violations is every breach of the delivery contract seen.
func (r *Receiver) Violations() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.violations...)
}

// Arrival is when index was first delivered, and its commit_timestamp
// (unix microseconds at apply) in that delivery.
func (r *Receiver) Arrival(index uint64) (at time.Time, commitTS int64, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	at, ok = r.arrival[index]
	return at, r.commit[index], ok
}

// WaitIndex waits until an index >= index has been delivered, or ctx
// ends; its error then says how far delivery got.
func (r *Receiver) WaitIndex(ctx context.Context, index uint64) error {
	for {
		r.mu.Lock()
		hi, ch := r.highest(), r.changed
		posts, refused := len(r.posts), r.refused
		r.mu.Unlock()
		if hi >= index {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("webhook: index %d not delivered (%w): highest delivered %d after %d POSTs (%d refused)",
				index, ctx.Err(), hi, posts, refused)
		}
	}
}

// Normalize turns a decoded JSON value into what the tests compare:
// json.Number becomes int64 when it is an integer, float64 otherwise;
// maps and slices are normalized in place.
func Normalize(v any) any {
	switch x := v.(type) {
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return i
		}
		f, err := x.Float64()
		if err != nil {
			return x.String()
		}
		return f
	case map[string]any:
		for k, e := range x {
			x[k] = Normalize(e)
		}
		return x
	case []any:
		for i, e := range x {
			x[i] = Normalize(e)
		}
		return x
	}
	return v
}
