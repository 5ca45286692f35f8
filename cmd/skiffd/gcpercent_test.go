package main

import (
	"strings"
	"testing"
)

func TestApplyGCPercent(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  map[string]string
		want int // the target set; 0: none set
		says string
	}{
		{"unset: skiffd's default", nil, defaultGCPercent, "200 (skiffd's default"},
		{"operator's value", map[string]string{"GOGC": "50"}, 0, `GOGC="50"`},
		{"operator's off", map[string]string{"GOGC": "off"}, 0, `GOGC="off"`},
		{"set but empty: the runtime's default, as Go reads it", map[string]string{"GOGC": ""}, 0, `GOGC=""`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := 0
			says := applyGCPercent(func(k string) (string, bool) { v, ok := tc.env[k]; return v, ok },
				func(p int) int { got = p; return 100 })
			if got != tc.want || !strings.HasPrefix(says, tc.says) {
				t.Fatalf("set %d, said %q; want %d, %q", got, says, tc.want, tc.says)
			}
		})
	}
}
