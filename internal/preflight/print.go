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

// WriteTable writes one row per result, the remedy under each warning and failure,
// and a summary line. Colour is used only when color is true (see IsTerminal).
func WriteTable(w io.Writer, rep Report, color bool) error {
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
	bw := bufio.NewWriter(w)
	for i, row := range rows {
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
		if i > 0 {
			res := rep.Results[i-1]
			if res.Remedy != "" && (res.Status == Warn || res.Status == Fail) {
				fmt.Fprintln(bw, strings.Repeat(" ", widths[0]+2)+dim.Render("→ "+res.Remedy))
			}
		}
	}
	fmt.Fprintf(bw, "\n%s (%.2fs)\n", rep.Summary, rep.Duration.Seconds())
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("writing the report: %w", err)
	}
	return nil
}
