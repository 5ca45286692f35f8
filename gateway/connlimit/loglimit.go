package connlimit

import (
	"errors"
	"net"
	"sync"
	"time"
)

// LogLimiter lets one log line per key through per interval: the one
// refusal-log limiter of the HTTP port (Limiter), the Raft port's mux and
// the Raft transport. A peer refused for its certificate retries at once
// and forever (Raft redials within milliseconds), and a flood of
// connections can come from anywhere: logging each would drown the log;
// the refusal counters say how many.
type LogLimiter struct {
	every   time.Duration
	mu      sync.Mutex
	last    map[string]time.Time
	skipped map[string]int
}

// RefusalKey is the limiter key of a refusal: who (a peer) and why, so
// that a peer failing the same way is logged once per interval while a
// new reason is logged at once. A network error's addresses (ephemeral
// ports) are left out.
func RefusalKey(who string, err error) string {
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		err = op.Err
	}
	if err == nil {
		return who
	}
	return who + ": " + err.Error()
}

// maxLimiterKeys bounds the keys remembered; past it, expired keys go.
const maxLimiterKeys = 1024

// NewLogLimiter allows one line per key every interval.
func NewLogLimiter(every time.Duration) *LogLimiter {
	return &LogLimiter{every: every, last: map[string]time.Time{}, skipped: map[string]int{}}
}

// Allow reports whether a line about key may be logged now.
func (l *LogLimiter) Allow(key string) bool {
	ok, _ := l.AllowSkipped(key)
	return ok
}

// AllowSkipped is Allow, and when it allows, how many lines about key it
// held back since the last one (for the line to say so).
func (l *LogLimiter) AllowSkipped(key string) (bool, int) {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if at, ok := l.last[key]; ok && now.Sub(at) < l.every {
		l.skipped[key]++
		return false, 0
	}
	if len(l.last) >= maxLimiterKeys {
		for k, at := range l.last {
			if now.Sub(at) >= l.every {
				delete(l.last, k)
				delete(l.skipped, k)
			}
		}
		if len(l.last) >= maxLimiterKeys {
			return false, 0 // a flood of distinct keys: the counters tell
		}
	}
	l.last[key] = now
	n := l.skipped[key]
	delete(l.skipped, key)
	return true, n
}
