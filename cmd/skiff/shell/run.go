package shell

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"

	"github.com/chzyer/readline"
)

// lineReader is where input lines come from: the line editor on a
// terminal, plain reads otherwise.
type lineReader interface {
	// ReadLine returns a line; errInterrupt on Ctrl-C, io.EOF at the end.
	ReadLine(prompt string) (string, error)
	Close() error
}

var errInterrupt = errors.New("interrupted")

// Run connects to the node and runs the session: from the line editor
// with history when stdin is a terminal, else line by line without
// prompts (scripts: `skiff shell < file.sql`). It returns when the input
// ends or asks to quit; a failed connection is its only error.
func Run(ctx context.Context, cfg Config, stdin io.Reader, stdout io.Writer) error {
	s, err := New(cfg, stdout)
	if err != nil {
		return err
	}
	if err := s.Connect(ctx); err != nil {
		return err
	}
	var lr lineReader
	if f, ok := stdin.(*os.File); ok && readline.IsTerminal(int(f.Fd())) {
		lr, err = newEditor(cfg, f, stdout)
		if err != nil {
			return err
		}
		fmt.Fprint(stdout, s.Banner())
	} else {
		lr = &plainReader{sc: bufio.NewScanner(stdin)}
	}
	defer lr.Close()
	s.loop(ctx, lr)
	fmt.Fprintln(stdout, "bye~")
	return nil
}

func (s *Shell) loop(ctx context.Context, lr lineReader) {
	var sp Splitter
	for ctx.Err() == nil {
		prompt := s.Prompt()
		if sp.Pending() {
			// sqlite3's continuation prompt, as wide as the prompt.
			prompt = strings.Repeat(" ", max(len(prompt)-5, 0)) + "...> "
		}
		line, err := lr.ReadLine(prompt)
		if errors.Is(err, errInterrupt) {
			// Ctrl-C drops the open statement, as in sqlite3.
			sp.Reset()
			continue
		}
		if err != nil {
			return
		}
		for _, in := range sp.Feed(line) {
			if s.execInterruptible(ctx, in) {
				return
			}
		}
	}
}

// execInterruptible runs one input; Ctrl-C while it runs cancels its
// request instead of ending the shell.
func (s *Shell) execInterruptible(ctx context.Context, in Input) bool {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt)
	defer signal.Stop(sig)
	go func() {
		select {
		case <-sig:
			cancel()
		case <-ctx.Done():
		}
	}()
	return s.Exec(ctx, in)
}

type plainReader struct{ sc *bufio.Scanner }

func (p *plainReader) ReadLine(string) (string, error) {
	if p.sc.Scan() {
		return p.sc.Text(), nil
	}
	if err := p.sc.Err(); err != nil {
		return "", err
	}
	return "", io.EOF
}

func (p *plainReader) Close() error { return nil }

type editor struct{ rl *readline.Instance }

func newEditor(cfg Config, in *os.File, out io.Writer) (*editor, error) {
	rl, err := readline.NewEx(&readline.Config{
		HistoryFile:       cfg.HistoryFile,
		HistoryLimit:      cfg.HistoryLimit,
		HistorySearchFold: true,
		InterruptPrompt:   "^C",
		Stdin:             in,
		Stdout:            out,
	})
	if err != nil {
		return nil, fmt.Errorf("line editor: %w", err)
	}
	return &editor{rl: rl}, nil
}

func (e *editor) ReadLine(prompt string) (string, error) {
	e.rl.SetPrompt(prompt)
	line, err := e.rl.Readline()
	if errors.Is(err, readline.ErrInterrupt) {
		return "", errInterrupt
	}
	return line, err
}

func (e *editor) Close() error { return e.rl.Close() }
