package replica

import (
	"context"
	"errors"
)

// This stub lets actors/cdc and bootstrap compile on the cdc branch; the sm
// helper's branch holds the real ProposeHighWater (a cmdpb CDC_HWM entry)
// and the coordinator deletes this file at merge.

var errHighWaterStub = errors.New("ProposeHighWater is not implemented on this branch")

// ProposeHighWater replicates the CDC high-water mark hwm (every voter's sink gets HighWater).
func (r *Replica) ProposeHighWater(ctx context.Context, hwm uint64) error {
	return errHighWaterStub
}
