package cdc

import "context"

// sink delivers batches of payload entries somewhere.
type sink interface {
	// deliver sends es (whole indexes, in order) and returns how many
	// leading entries the sink acknowledged: all of them when err is nil.
	deliver(ctx context.Context, es []entry) (int, error)
	// close releases connections.
	close()
}
