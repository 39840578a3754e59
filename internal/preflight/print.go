package preflight

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/charmbracelet/lipgloss"
	"github.com/mattn/go-isatty"
	"github.com/muesli/termenv"
)

// IsTerminal says whether w is a terminal, where the table may use colour.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && (isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd()))
}

// WriteJSON writes the report as indented JSON (see the Report and Result field docs).
func WriteJSON(w io.Writer, rep Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(rep); err != nil {
		return fmt.Errorf("writing the JSON report: %w", err)
	}
	return nil
}

var tableHeader = []string{"STATUS", "CHECK", "SUBJECT", "MEASURED", "THRESHOLD"}

// TableWidth is the width the table keeps to unless asked for all of it
// (-o wide): an 100-column terminal shows every row whole.
const TableWidth = 100

// WriteTable writes one row per result, the remedy under each warning and failure,
// and a summary line. Colour is used only when color is true (see IsTerminal).
// A table wider than width (0: no limit) moves each threshold to a line of its
// own under the measurement and wraps long measurements and remedies.
func WriteTable(w io.Writer, rep Report, color bool, width int) error {
	r := lipgloss.NewRenderer(w)
	r.SetColorProfile(termenv.Ascii)
	if color {
		r.SetColorProfile(termenv.ANSI)
	}
	styles := map[Status]lipgloss.Style{
		Pass: r.NewStyle().Foreground(lipgloss.Color("2")),
		Warn: r.NewStyle().Foreground(lipgloss.Color("3")).Bold(true),
		Fail: r.NewStyle().Foreground(lipgloss.Color("1")).Bold(true),
		Skip: r.NewStyle().Faint(true),
	}
	dim := r.NewStyle().Faint(true)

	rows := [][]string{tableHeader}
	for _, res := range rep.Results {
		rows = append(rows, []string{strings.ToUpper(string(res.Status)), res.ID, res.Subject, res.Measured, res.Threshold})
	}
	widths := make([]int, len(tableHeader))
	for _, row := range rows {
		for i, cell := range row {
			widths[i] = max(widths[i], lipgloss.Width(cell))
		}
	}
	total := 0
	for _, wd := range widths {
		total += wd + 2
	}
	narrow := width > 0 && total-2 > width
	cols := len(tableHeader)
	if narrow {
		cols-- // the threshold goes under the measurement
	}
	indent := 0
	for _, wd := range widths[:3] {
		indent += wd + 2
	}
	room := max(width-indent, 20)
	pad := strings.Repeat(" ", indent)

	bw := bufio.NewWriter(w)
	for i, row := range rows {
		row = row[:cols]
		var measured []string
		if narrow {
			measured = wrap(row[3], room)
			row[3] = measured[0]
		}
		var line strings.Builder
		for j, cell := range row {
			padded := cell
			if j < len(row)-1 {
				padded += strings.Repeat(" ", widths[j]-lipgloss.Width(cell)+2)
			}
			if j == 0 && i > 0 {
				padded = styles[rep.Results[i-1].Status].Render(cell) + strings.Repeat(" ", widths[j]-lipgloss.Width(cell)+2)
			}
			line.WriteString(padded)
		}
		fmt.Fprintln(bw, strings.TrimRight(line.String(), " "))
		if i == 0 {
			continue
		}
		res := rep.Results[i-1]
		if narrow {
			for _, more := range measured[1:] {
				fmt.Fprintln(bw, pad+more)
			}
			if res.Threshold != "" && res.Threshold != res.Measured {
				for _, l := range wrap("want "+res.Threshold, room) {
					fmt.Fprintln(bw, pad+dim.Render(l))
				}
			}
		}
		if res.Remedy != "" && (res.Status == Warn || res.Status == Fail) {
			at, avail := strings.Repeat(" ", widths[0]+2), 0
			if width > 0 {
				avail = max(width-widths[0]-2, 20)
			}
			for k, l := range wrap("→ "+res.Remedy, avail) {
				if k > 0 {
					l = "  " + l
				}
				fmt.Fprintln(bw, at+dim.Render(l))
			}
		}
	}
	fmt.Fprintf(bw, "\n%s (%.2fs)\n", rep.Summary, rep.Duration.Seconds())
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("writing the report: %w", err)
	}
	return nil
}

// wrap breaks s at spaces into lines of at most width cells (0: no limit);
// a word longer than width stays whole on its own line.
func wrap(s string, width int) []string {
	if width <= 0 || lipgloss.Width(s) <= width {
		return []string{s}
	}
	var lines []string
	var cur strings.Builder
	for _, word := range strings.Fields(s) {
		if cur.Len() > 0 && lipgloss.Width(cur.String())+1+lipgloss.Width(word) > width {
			lines = append(lines, cur.String())
			cur.Reset()
		}
		if cur.Len() > 0 {
			cur.WriteByte(' ')
		}
		cur.WriteString(word)
	}
	if cur.Len() > 0 || len(lines) == 0 {
		lines = append(lines, cur.String())
	}
	return lines
}
