package main

import (
	"fmt"
	"strconv"
)

// defaultGCPercent is the Go collector's target when the operator sets no
// GOGC. A node's live Go heap is small (SQLite's pages are C memory), so at
// Go's default of 100 the collector runs dozens of times a second under
// load; 200 halves that for a few MB of heap. The measurements are in the
// README (Benchmarks) and make bench-gc.
const defaultGCPercent = 200

// applyGCPercent sets the collector's target through set (debug.SetGCPercent)
// unless the operator's GOGC, any value (off or invalid ones are the
// runtime's to read), is in the environment, and says which, for the log.
func applyGCPercent(lookupEnv func(string) (string, bool), set func(int) int) string {
	if v, ok := lookupEnv("GOGC"); ok {
		return "GOGC=" + strconv.Quote(v) + " (the operator's)"
	}
	set(defaultGCPercent)
	return fmt.Sprintf("%d (skiffd's default; GOGC overrides it)", defaultGCPercent)
}
