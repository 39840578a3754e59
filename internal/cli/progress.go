package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/charmbracelet/lipgloss"

	"github.com/aideploy/aideploy/internal/iostreams"
	"github.com/aideploy/aideploy/internal/rollout"
)

// progress draws rollout events: a live step list on a terminal, plain
// timestamped lines otherwise, one JSON object per event with --output json.
type progress struct {
	mu     sync.Mutex
	w      io.Writer
	mode   string // live, plain or json
	color  bool
	steps  []stepLine
	notes  []string
	drawn  int // lines drawn last time, to redraw over them
	now    func() time.Time
	closed bool
}

type stepLine struct {
	step    rollout.Step
	kind    rollout.EventKind
	started time.Time
	elapsed time.Duration
	msg     string
}

func newProgress(io *iostreams.IOStreams, output string) *progress {
	p := &progress{w: io.Out, mode: "plain", color: io.ColorEnabled(), now: time.Now}
	switch {
	case output == "json":
		p.mode = "json"
	case io.IsTerminal():
		p.mode = "live"
	}
	return p
}

// Observe takes one event; it is the Runner's Observe.
func (p *progress) Observe(e rollout.Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch p.mode {
	case "json":
		b, _ := json.Marshal(struct {
			rollout.Event
			ElapsedMs int64 `json:"elapsedMs"`
		}{e, e.Elapsed.Milliseconds()})
		fmt.Fprintf(p.w, "%s\n", b)
		return
	case "plain":
		line := fmt.Sprintf("%s %-8s %-7s", e.Time.UTC().Format("15:04:05.000"), e.Step, e.Kind)
		if e.Kind == rollout.EventDone || e.Kind == rollout.EventFailed {
			line += " " + e.Elapsed.Round(time.Millisecond).String()
		}
		if e.Message != "" {
			line += " " + firstLine(e.Message)
		}
		fmt.Fprintln(p.w, strings.TrimRight(line, " "))
		return
	}
	p.apply(e)
	p.redraw()
}

// Tick redraws the running step's elapsed time on a terminal.
func (p *progress) Tick() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.mode == "live" && !p.closed {
		p.redraw()
	}
}

// Close stops redrawing.
func (p *progress) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
}

func (p *progress) apply(e rollout.Event) {
	if e.Kind == rollout.EventInfo {
		if e.Step == rollout.StepPlan && len(p.steps) == 0 {
			p.notes = append(p.notes, e.Message)
		} else if e.Message != "" {
			p.notes = append(p.notes, string(e.Step)+": "+firstLine(e.Message))
		}
		return
	}
	for i := range p.steps {
		if p.steps[i].step == e.Step {
			s := &p.steps[i]
			if e.Kind == rollout.EventProgress {
				s.msg = firstLine(e.Message) // the step runs on; its line says how far
				return
			}
			s.kind, s.msg = e.Kind, firstLine(e.Message)
			if e.Kind == rollout.EventStart {
				s.started = e.Time
			} else {
				s.elapsed = e.Elapsed
			}
			return
		}
	}
	p.steps = append(p.steps, stepLine{step: e.Step, kind: e.Kind, started: e.Time, elapsed: e.Elapsed, msg: firstLine(e.Message)})
}

func (p *progress) redraw() {
	var b strings.Builder
	if p.drawn > 0 {
		fmt.Fprintf(&b, "\x1b[%dA", p.drawn)
	}
	lines := p.view()
	for _, l := range lines {
		b.WriteString("\x1b[2K" + l + "\n")
	}
	p.drawn = len(lines)
	io.WriteString(p.w, b.String())
}

// view renders the step list; it is pure so tests can read it.
func (p *progress) view() []string {
	style := func(c string) lipgloss.Style {
		if !p.color {
			return lipgloss.NewStyle()
		}
		return lipgloss.NewStyle().Foreground(lipgloss.Color(c))
	}
	glyph := map[rollout.EventKind]string{
		rollout.EventStart:   style("12").Render("◌"),
		rollout.EventDone:    style("10").Render("✔"),
		rollout.EventFailed:  style("9").Render("✖"),
		rollout.EventSkipped: style("8").Render("-"),
	}
	var out []string
	for _, n := range p.notes {
		out = append(out, style("8").Render("  "+n))
	}
	for _, s := range p.steps {
		el := s.elapsed
		if s.kind == rollout.EventStart {
			el = p.now().Sub(s.started)
		}
		line := fmt.Sprintf("%s %-8s %7s", glyph[s.kind], s.step, el.Round(100*time.Millisecond))
		if s.kind == rollout.EventSkipped {
			line = fmt.Sprintf("%s %-8s %7s", glyph[s.kind], s.step, "")
		}
		if s.msg != "" {
			line += "  " + style("8").Render(s.msg)
		}
		out = append(out, line)
	}
	return out
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
