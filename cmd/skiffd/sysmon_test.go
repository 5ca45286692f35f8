package main

import (
	"slices"
	"testing"
)

func TestSysmonEnv(t *testing.T) {
	const set = "GODEBUG=" + sysmonGODEBUG
	for _, tc := range []struct {
		name    string
		in      []string
		want    []string
		changed bool
	}{
		{"no GODEBUG", []string{"A=1"}, []string{"A=1", set}, true},
		{"empty GODEBUG", []string{"GODEBUG=", "B=2"}, []string{set, "B=2"}, true},
		{"other settings kept", []string{"GODEBUG=madvdontneed=1"}, []string{"GODEBUG=madvdontneed=1," + sysmonGODEBUG}, true},
		{"operator's schedtrace kept", []string{"GODEBUG=schedtrace=1000"}, []string{"GODEBUG=schedtrace=1000"}, false},
		{"schedtrace=0 opts out", []string{"GODEBUG=gctrace=1,schedtrace=0"}, []string{"GODEBUG=gctrace=1,schedtrace=0"}, false},
		{"already re-executed", []string{set}, []string{set}, false},
		{"a lookalike key is not schedtrace", []string{"GODEBUG=xschedtrace=1"}, []string{"GODEBUG=xschedtrace=1," + sysmonGODEBUG}, true},
		{"the first GODEBUG is the one read", []string{"GODEBUG=gctrace=1", "GODEBUG=schedtrace=0"}, []string{"GODEBUG=gctrace=1," + sysmonGODEBUG, "GODEBUG=schedtrace=0"}, true},
		{"a variable merely ending in GODEBUG", []string{"XGODEBUG=schedtrace=0"}, []string{"XGODEBUG=schedtrace=0", set}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := slices.Clone(tc.in)
			got, changed := sysmonEnv(in)
			if changed != tc.changed || !slices.Equal(got, tc.want) {
				t.Fatalf("sysmonEnv(%q) = %q, %v; want %q, %v", tc.in, got, changed, tc.want, tc.changed)
			}
			if !slices.Equal(in, tc.in) {
				t.Fatalf("sysmonEnv modified its argument: %q", in)
			}
		})
	}
}
