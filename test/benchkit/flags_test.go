package benchkit

import (
	"errors"
	"flag"
	"io"
	"testing"
	"time"
)

// Register's defaults are the Flags' values; Validate refuses what a
// median over runs cannot use.
func TestFlags(t *testing.T) {
	f := DefaultFlags()
	f.D = 5 * time.Second
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	f.Register(fs)
	if err := fs.Parse([]string{"-c", "8"}); err != nil {
		t.Fatal(err)
	}
	if f.D != 5*time.Second || f.Workers != 8 || f.Runs != 5 || f.Skiffd != "bin/skiffd" {
		t.Fatalf("parsed %+v", f)
	}
	if err := f.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"-runs", "0"}, {"-c", "0"}, {"-d", "0s"}, {"-skiffd", ""}} {
		g := DefaultFlags()
		fs := flag.NewFlagSet("x", flag.ContinueOnError)
		g.Register(fs)
		if err := fs.Parse(args); err != nil {
			t.Fatal(err)
		}
		if err := g.Validate(); !errors.Is(err, ErrFlags) {
			t.Errorf("%v: Validate = %v, want ErrFlags", args, err)
		}
	}
}
