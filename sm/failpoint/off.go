//go:build !failpoints

package failpoint

// Compiled reports whether failpoints are compiled into this binary.
const Compiled = false

// Set has no failpoints in a binary built without the failpoints tag.
type Set struct{}

// New returns nil for an empty spec and ErrNotCompiled otherwise.
func New(spec string) (*Set, error) {
	acts, err := ParseSpec(spec)
	if err != nil {
		return nil, err
	}
	if len(acts) > 0 {
		return nil, ErrNotCompiled
	}
	return nil, nil
}

// Status is a failpoint's action and how often it was reached.
type Status struct {
	Name   string `json:"name"`
	Action string `json:"action"`
	Hits   uint64 `json:"hits"`
}

// List returns nothing: there are no failpoints.
func (s *Set) List() []Status { return nil }

// Enable refuses: there are no failpoints.
func (s *Set) Enable(name, action string) error { return ErrNotCompiled }

// Inject does nothing.
func (s *Set) Inject(name string, stop <-chan struct{}) error { return nil }
