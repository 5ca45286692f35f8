//go:build !sqlite_preupdate_hook

package sm

import (
	"errors"
	"testing"
)

type nopSink struct{}

func (nopSink) Capture([]ChangeGroup) error { return nil }
func (nopSink) HighWater(uint64)            {}
func (nopSink) Installed(uint64)            {}

func TestCaptureUnsupportedWithoutTheHook(t *testing.T) {
	if _, err := New(Config{Dir: t.TempDir(), Capture: &CaptureConfig{Sink: nopSink{}}}); !errors.Is(err, ErrCaptureUnsupported) {
		t.Fatalf("New = %v, want ErrCaptureUnsupported", err)
	}
}
