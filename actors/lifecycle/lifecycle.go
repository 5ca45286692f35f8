package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/skiffdb/skiff/sm"
)

// ErrInvalidConfig is returned by Config.Validate.
var ErrInvalidConfig = errors.New("invalid lifecycle config")

// Config configures the lifecycle actor.
type Config struct {
	Logger *zap.Logger
	// Now is the clock (tests replace it).
	Now func() time.Time
}

// WithDefaults fills zero fields.
func (c Config) WithDefaults() Config {
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Validate reports whether c is usable.
func (c Config) Validate() error {
	if c.Logger == nil || c.Now == nil {
		return fmt.Errorf("%w: Logger and Now must be set (use WithDefaults)", ErrInvalidConfig)
	}
	return nil
}

// Lifecycle is the actor. Its State is readable from any goroutine at any
// time, from the moment New returns.
type Lifecycle struct {
	cfg     Config
	machine *Machine
	// box is the inbox: never blocking, never losing a state event (see
	// mailbox).
	box   *mailbox
	state atomic.Pointer[State]
	// changed is closed, and replaced, when a publication changes the
	// node's role (role): waiters on leadership or readiness block on it
	// instead of polling State.
	changedMu sync.Mutex
	changed   chan struct{}
	lastRole  role
}

// role is what a publication must change to wake Changed's waiters: the
// phase, who leads and the Raft membership, not the progress counters
// that move on every apply.
type role struct {
	phase     Phase
	leader    uint64
	replicaID uint64
	members   uint64
}

func roleOf(st *State) role {
	return role{phase: st.Phase, leader: st.LeaderReplicaID, replicaID: st.Identity.ReplicaID, members: membersSum(st.RaftMembers)}
}

// membersSum is an FNV-1a hash of the Raft membership (replica IDs,
// addresses, voting), cheap enough for every publication and free of
// allocations; a membership re-read unchanged sums the same.
func membersSum(ms []Member) uint64 {
	const prime = 1099511628211
	h := uint64(14695981039346656037)
	mix := func(b byte) { h = (h ^ uint64(b)) * prime }
	for _, m := range ms {
		for i := range 8 {
			mix(byte(m.ReplicaID >> (8 * i)))
		}
		for i := range len(m.RaftAddr) {
			mix(m.RaftAddr[i])
		}
		if m.Voter {
			mix(1)
		} else {
			mix(2)
		}
	}
	return h
}

// Changed returns a channel closed at the next publication that changes
// the phase, the leader or the Raft membership. Take it before reading State, then wait on it:
// a change in between closes the channel already taken.
func (l *Lifecycle) Changed() <-chan struct{} {
	l.changedMu.Lock()
	defer l.changedMu.Unlock()
	return l.changed
}

// New returns a lifecycle in Starting.
func New(cfg Config) (*Lifecycle, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	l := &Lifecycle{cfg: cfg, machine: NewMachine(cfg.Now()), box: newMailbox(), changed: make(chan struct{})}
	st := l.machine.State()
	l.state.Store(&st)
	l.lastRole = roleOf(&st)
	return l, nil
}

// State returns the latest published state. Never nil.
func (l *Lifecycle) State() *State { return l.state.Load() }

// Notify hands ev to the actor. It never blocks, so Dragonboat's callbacks
// and the state machine may call it, and it never loses an event that
// changes state; successive progress reports (applied index, snapshot
// bytes) may be coalesced into the latest, counted in State.Coalesced.
func (l *Lifecycle) Notify(ev Event) { l.box.put(ev) }

// NotifySM adapts Notify to the state machine's event hook.
func (l *Lifecycle) NotifySM(e sm.Event) { l.Notify(SMEvent{E: e}) }

// Run applies events until ctx ends; events queued by then are applied and
// published before it returns.
func (l *Lifecycle) Run(ctx context.Context) error {
	for {
		select {
		case <-l.box.signal:
			// Everything queued is applied before publishing, so a burst
			// of events costs one publication.
			l.applyAll(l.box.take())
		case <-ctx.Done():
			l.applyAll(l.box.close())
			return nil
		}
	}
}

func (l *Lifecycle) applyAll(evs []Event) {
	for _, ev := range evs {
		l.apply(ev)
	}
	l.publish()
}

func (l *Lifecycle) apply(ev Event) {
	before := l.machine.State().Phase
	if l.machine.Apply(ev, l.cfg.Now()) {
		if after := l.machine.State().Phase; after != before {
			l.cfg.Logger.Info("node phase changed", zap.String("from", string(before)), zap.String("to", string(after)))
		}
	}
}

func (l *Lifecycle) publish() {
	st := l.machine.State()
	st.Coalesced, st.Dropped = l.box.counters()
	l.state.Store(&st)
	if r := roleOf(&st); r != l.lastRole {
		l.lastRole = r
		l.changedMu.Lock()
		close(l.changed)
		l.changed = make(chan struct{})
		l.changedMu.Unlock()
	}
}

// SetStopping moves to Stopping synchronously with respect to readers: the
// caller (shutdown) needs data requests refused before it stops anything.
// It goes through the inbox like every event, and waits until published.
func (l *Lifecycle) SetStopping(ctx context.Context) {
	l.Notify(ShuttingDown{})
	for {
		changed := l.Changed()
		if l.State().Phase == Stopping {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-changed:
		}
	}
}
