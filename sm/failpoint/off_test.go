//go:build !failpoints

package failpoint

import (
	"errors"
	"testing"
)

// A production build refuses failpoints instead of ignoring them.
func TestNotCompiled(t *testing.T) {
	if Compiled {
		t.Fatal("Compiled without the tag")
	}
	if _, err := New("sm/open=pause"); !errors.Is(err, ErrNotCompiled) {
		t.Fatalf("New: %v", err)
	}
	if s, err := New(" ; "); err != nil || s != nil {
		t.Fatalf("empty spec: %v, %v", s, err)
	}
}
