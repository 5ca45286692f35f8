package nemesis

import (
	"testing"
	"time"
)

func TestLongestGap(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms ...int) []time.Time {
		var out []time.Time
		for _, m := range ms {
			out = append(out, t0.Add(time.Duration(m)*time.Millisecond))
		}
		return out
	}
	ms := func(m int) time.Time { return t0.Add(time.Duration(m) * time.Millisecond) }
	for _, tc := range []struct {
		name     string
		acks     []time.Time
		from, to int
		want     time.Duration
	}{
		{"the interval spanning the kill counts whole", at(0, 900, 1700, 1800), 1000, 2000, 800 * time.Millisecond},
		{"one spanning the next kill counts up to it", at(0, 900, 1000, 1100, 4500), 1000, 3000, 1900 * time.Millisecond},
		{"no ack after the kill: until the next kill", at(0, 900), 1000, 3000, 2100 * time.Millisecond},
		{"no ack at all: since the start", nil, 1000, 3000, 3000 * time.Millisecond},
		{"a later, longer gap before the next kill", at(0, 950, 1200, 2500, 2600), 1000, 2700, 1300 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := longestGap(tc.acks, ms(tc.from), ms(tc.to), t0, ms(10_000)); got != tc.want {
				t.Fatalf("longestGap = %s, want %s", got, tc.want)
			}
		})
	}
}
