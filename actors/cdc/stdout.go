package cdc

import (
	"context"
	"fmt"
	"io"
)

// stdout prints rqlite's envelope, one line per batch.
type stdout struct {
	w                 io.Writer
	serviceID, nodeID string
	bytesSent         func(int)
}

func (s *stdout) deliver(_ context.Context, es []entry) (int, error) {
	line := append(envelope(s.serviceID, s.nodeID, es), '\n')
	if _, err := s.w.Write(line); err != nil {
		return 0, fmt.Errorf("%w: stdout: %w", ErrDelivery, err)
	}
	s.bytesSent(len(line))
	return len(es), nil
}

func (s *stdout) close() {}
