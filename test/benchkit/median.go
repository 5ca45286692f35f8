package benchkit

import (
	"sort"

	"github.com/skiffdb/skiff/cmd/skiff/bench"
)

// Measured is one run of a workload and the CPU it cost.
type Measured struct {
	Res *bench.Result
	CPU CPUPerRequest
}

// Median sorts ms by requests per second (in place) and returns the
// middle run.
func Median(ms []Measured) Measured {
	sort.Slice(ms, func(a, b int) bool { return ms[a].Res.RequestsPerS < ms[b].Res.RequestsPerS })
	return ms[len(ms)/2]
}
