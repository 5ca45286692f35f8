package nodeview

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/chzyer/readline"
)

// clearScreen moves the cursor home and clears the screen (ANSI).
const clearScreen = "\x1b[H\x1b[2J"

// Once prints one frame; its error is ErrNoNode if nothing answered.
func (v *Viewer) Once(ctx context.Context, out io.Writer) error {
	f, err := v.Gather(ctx)
	_, _ = io.WriteString(out, Render(f))
	return err
}

// Watch redraws the view every interval until ctx ends or, when in is a
// terminal, q or Ctrl-C is typed (the terminal is in raw mode meanwhile,
// so a key needs no Enter). The key reader ends before Watch returns.
func (v *Viewer) Watch(ctx context.Context, in *os.File, out io.Writer) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	nl := "\n"
	if in != nil && readline.IsTerminal(int(in.Fd())) {
		st, err := readline.MakeRaw(int(in.Fd()))
		if err != nil {
			return fmt.Errorf("terminal: %w", err)
		}
		defer func() { _ = readline.Restore(int(in.Fd()), st) }()
		// Raw mode turns off the terminal's newline translation.
		nl = "\r\n"
		stop, err := watchKeys(in, cancel)
		if err != nil {
			return fmt.Errorf("terminal: %w", err)
		}
		// Runs before the Restore above: the reader ends first.
		defer stop()
	}
	t := time.NewTicker(v.cfg.Interval)
	defer t.Stop()
	for {
		f, _ := v.Gather(ctx)
		if ctx.Err() != nil {
			break
		}
		frame := Render(f) + "q or Ctrl-C quits\n"
		_, _ = io.WriteString(out, clearScreen+strings.ReplaceAll(frame, "\n", nl))
		select {
		case <-ctx.Done():
		case <-t.C:
			continue
		}
		break
	}
	_, _ = io.WriteString(out, nl)
	return nil
}
