// Package iostreams is where every command's input and output goes. It knows
// whether the output is a terminal, so colour, spinners and live redraws happen
// only there and logs stay plain.
package iostreams

import (
	"bytes"
	"io"
	"os"

	"github.com/mattn/go-isatty"
)

// IOStreams are the standard streams of one invocation.
type IOStreams struct {
	In     io.Reader
	Out    io.Writer
	ErrOut io.Writer

	outTTY  bool
	noColor bool
}

// System returns the process's streams.
func System() *IOStreams {
	tty := isatty.IsTerminal(os.Stdout.Fd()) || isatty.IsCygwinTerminal(os.Stdout.Fd())
	_, noColor := os.LookupEnv("NO_COLOR")
	return &IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr, outTTY: tty, noColor: noColor || os.Getenv("TERM") == "dumb"}
}

// Test returns streams backed by buffers, not a terminal.
func Test() (s *IOStreams, in, out, errOut *bytes.Buffer) {
	in, out, errOut = &bytes.Buffer{}, &bytes.Buffer{}, &bytes.Buffer{}
	return &IOStreams{In: in, Out: out, ErrOut: errOut}, in, out, errOut
}

// IsTerminal says whether Out is a terminal: live progress and prompts only then.
func (s *IOStreams) IsTerminal() bool { return s.outTTY }

// SetTerminal overrides terminal detection, for tests of the terminal views.
func (s *IOStreams) SetTerminal(tty bool) { s.outTTY = tty }

// ColorEnabled says whether colour escapes may be written to Out.
func (s *IOStreams) ColorEnabled() bool { return s.outTTY && !s.noColor }

// DisableColor turns colour off (--no-color, NO_COLOR).
func (s *IOStreams) DisableColor() { s.noColor = true }
