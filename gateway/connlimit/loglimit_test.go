package connlimit

import (
	"strings"
	"testing"
	"time"
)

func TestLogLimiter(t *testing.T) {
	l := NewLogLimiter(time.Hour)
	if !l.Allow("a") || l.Allow("a") || !l.Allow("b") {
		t.Fatal("one line per key per interval")
	}
	if l.Allow("a") || l.skipped["a"] != 2 {
		t.Fatalf("held-back lines about a: %d, want 2", l.skipped["a"])
	}
	for i := range maxLimiterKeys {
		l.Allow(strings.Repeat("k", i+2))
	}
	if l.Allow("new") || len(l.last) > maxLimiterKeys {
		t.Fatalf("a flood of keys must not grow the map past %d (%d)", maxLimiterKeys, len(l.last))
	}
	l = NewLogLimiter(0)
	for range 2 {
		if !l.Allow("a") {
			t.Fatal("a zero interval allows every line")
		}
	}
}

// AllowSkipped says how many lines about a key it held back.
func TestLogLimiterSkipped(t *testing.T) {
	l := NewLogLimiter(time.Hour)
	if ok, n := l.AllowSkipped("a"); !ok || n != 0 {
		t.Fatalf("first line: %v, %d", ok, n)
	}
	for range 3 {
		if ok, _ := l.AllowSkipped("a"); ok {
			t.Fatal("a second line within the interval")
		}
	}
	l.last["a"] = time.Now().Add(-2 * time.Hour) // the interval has passed
	if ok, n := l.AllowSkipped("a"); !ok || n != 3 {
		t.Fatalf("after the interval: %v, %d held back, want true, 3", ok, n)
	}
}
