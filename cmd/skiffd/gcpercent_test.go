package main

import "testing"

func TestGCPercent(t *testing.T) {
	for _, tc := range []struct {
		name    string
		env     map[string]string
		want    int
		wantSet bool
	}{
		{"unset: skiffd's default", nil, defaultGCPercent, true},
		{"operator's value", map[string]string{"GOGC": "50"}, 0, false},
		{"operator's off", map[string]string{"GOGC": "off"}, 0, false},
		{"set but empty: the runtime's default, as Go reads it", map[string]string{"GOGC": ""}, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, set := gcPercent(func(k string) (string, bool) { v, ok := tc.env[k]; return v, ok })
			if got != tc.want || set != tc.wantSet {
				t.Fatalf("gcPercent = %d, %v; want %d, %v", got, set, tc.want, tc.wantSet)
			}
		})
	}
}
