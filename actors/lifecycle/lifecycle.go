package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/skiffdb/skiff/actors"
	"github.com/skiffdb/skiff/sm"
)

// eventBuffer is the inbox size. Events come in bursts (one per applied
// batch, many per snapshot); the buffer absorbs a burst while lifecycle
// publishes, and an overflow only loses a progress report, counted in
// State.Dropped.
const eventBuffer = 4096

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
	events  chan Event
	// stop asks for Stopping on a channel of its own, because an event in
	// a full inbox may be dropped and this one must not be.
	stop    *actors.Done
	state   atomic.Pointer[State]
	dropped atomic.Uint64
}

// New returns a lifecycle in Starting.
func New(cfg Config) (*Lifecycle, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	l := &Lifecycle{cfg: cfg, machine: NewMachine(cfg.Now()), events: make(chan Event, eventBuffer), stop: actors.NewDone()}
	st := l.machine.State()
	l.state.Store(&st)
	return l, nil
}

// State returns the latest published state. Never nil.
func (l *Lifecycle) State() *State { return l.state.Load() }

// Notify hands ev to the actor without ever blocking; if the inbox is full
// the event is dropped and counted.
func (l *Lifecycle) Notify(ev Event) {
	select {
	case l.events <- ev:
	default:
		l.dropped.Add(1)
	}
}

// NotifySM adapts Notify to the state machine's event hook.
func (l *Lifecycle) NotifySM(e sm.Event) { l.Notify(SMEvent{E: e}) }

// Run applies events until ctx ends.
func (l *Lifecycle) Run(ctx context.Context) error {
	stop := l.stop.C()
	for {
		select {
		case <-stop:
			l.apply(ShuttingDown{})
			l.publish()
			stop = nil
		case ev := <-l.events:
			l.apply(ev)
			// Drain what is queued before publishing, so a burst of
			// progress events costs one publication.
			for drained := false; !drained; {
				select {
				case ev := <-l.events:
					l.apply(ev)
				default:
					drained = true
				}
			}
			l.publish()
		case <-ctx.Done():
			return nil
		}
	}
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
	st.Dropped = l.dropped.Load()
	l.state.Store(&st)
}

// SetStopping moves to Stopping synchronously with respect to readers: the
// caller (shutdown) needs data requests refused before it stops anything.
// It goes through the inbox like every event, and waits until published.
func (l *Lifecycle) SetStopping(ctx context.Context) {
	l.stop.Close()
	t := time.NewTicker(time.Millisecond)
	defer t.Stop()
	for l.State().Phase != Stopping {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
