package main

import (
	"fmt"
	"runtime/debug"
	"strconv"
)

// defaultGCPercent is the Go collector's target (GOGC) when the operator
// sets none. A node's live Go heap is small (6-12 MB under load: SQLite's
// pages are C memory), so at Go's default of 100 the collector ran 34
// times a second under point reads, mostly fixed cost per cycle. 200
// doubles the headroom, about 10 MB more heap at that size, and measured
// nodes' CPU per request ×0.934 (point reads), ×0.941 (inserts) and
// ×0.958 (linearizable reads) in make bench-gc's alternating slices.
// 400 gained 2.5% more on reads for twice that memory.
const defaultGCPercent = 200

// gcPercent returns the GC target to set and whether to set it: an
// operator's GOGC, even off or invalid (which the runtime itself
// interprets), is left to the runtime.
func gcPercent(lookupEnv func(string) (string, bool)) (int, bool) {
	if _, ok := lookupEnv("GOGC"); ok {
		return 0, false
	}
	return defaultGCPercent, true
}

// setGCPercent applies gcPercent and says what it did, for the log.
func setGCPercent(lookupEnv func(string) (string, bool)) string {
	p, ok := gcPercent(lookupEnv)
	if !ok {
		v, _ := lookupEnv("GOGC")
		return "GOGC=" + strconv.Quote(v) + " (the operator's)"
	}
	debug.SetGCPercent(p)
	return fmt.Sprintf("%d (skiffd's default; GOGC overrides it)", p)
}
