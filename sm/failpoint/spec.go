package failpoint

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Kind is what a failpoint does when reached.
type Kind int

// The actions of a failpoint.
const (
	Off Kind = iota
	Sleep
	Pause
	Error
	Crash
)

// Action is one parsed action.
type Action struct {
	Kind Kind
	// Sleep is the wait of a sleep action.
	Sleep time.Duration
	// Count, if positive, limits the action to that many evaluations.
	Count int
}

// String is the action in spec form.
func (a Action) String() string {
	var s string
	switch a.Kind {
	case Off:
		return "off"
	case Sleep:
		s = "sleep(" + a.Sleep.String() + ")"
	case Pause:
		s = "pause"
	case Error:
		s = "error"
	case Crash:
		s = "crash"
	}
	if a.Count > 0 {
		s = strconv.Itoa(a.Count) + "*" + s
	}
	return s
}

// ParseAction parses one action ("pause", "3*error", "sleep(200ms)").
func ParseAction(s string) (Action, error) {
	s = strings.TrimSpace(s)
	var a Action
	if n, rest, ok := strings.Cut(s, "*"); ok {
		c, err := strconv.Atoi(strings.TrimSpace(n))
		if err != nil || c < 1 {
			return Action{}, fmt.Errorf("%w: count %q", ErrBadSpec, n)
		}
		a.Count, s = c, strings.TrimSpace(rest)
	}
	switch {
	case s == "off" || s == "":
		if a.Count > 0 {
			return Action{}, fmt.Errorf("%w: a count on off", ErrBadSpec)
		}
		a.Kind = Off
	case s == "pause":
		a.Kind = Pause
	case s == "error":
		a.Kind = Error
	case s == "crash":
		a.Kind = Crash
	case strings.HasPrefix(s, "sleep(") && strings.HasSuffix(s, ")"):
		d, err := time.ParseDuration(s[len("sleep(") : len(s)-1])
		if err != nil || d < 0 {
			return Action{}, fmt.Errorf("%w: %q: bad duration", ErrBadSpec, s)
		}
		a.Kind, a.Sleep = Sleep, d
	default:
		return Action{}, fmt.Errorf("%w: unknown action %q", ErrBadSpec, s)
	}
	return a, nil
}

// ParseSpec parses "name=action;name=action" (empty parts are skipped).
func ParseSpec(spec string) (map[string]Action, error) {
	out := map[string]Action{}
	for _, part := range strings.Split(spec, ";") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, act, ok := strings.Cut(part, "=")
		name = strings.TrimSpace(name)
		if !ok || name == "" {
			return nil, fmt.Errorf("%w: %q is not name=action", ErrBadSpec, part)
		}
		a, err := ParseAction(act)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		out[name] = a
	}
	return out, nil
}
