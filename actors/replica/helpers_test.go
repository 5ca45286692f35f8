package replica

import (
	"runtime"

	"github.com/skiffdb/skiff/actors"
)

func runtimeProcs() int { return runtime.GOMAXPROCS(0) }

func errActorStopped() error { return actors.ErrStopped }
