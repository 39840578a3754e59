package cli

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/aideploy/aideploy/internal/rollout"
)

type historyOptions struct {
	f      *Factory
	target targetFlags
}

func newCmdHistory(f *Factory, runF func(context.Context, *historyOptions) error) *cobra.Command {
	opts := &historyOptions{f: f}
	cmd := &cobra.Command{
		Use:   "history",
		Short: "List past rollouts and rollbacks with their outcome, newest first",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return runHistory(cmd.Context(), opts)
		},
	}
	opts.target.register(cmd)
	return cmd
}

// printHistory writes the journals as a table.
func printHistory(w io.Writer, js []rollout.Journal) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "STARTED\tOP\tREVISION\tIMAGE\tSTATUS\tSTEP\tTTFT\tREASON")
	for _, j := range js {
		reason := firstLine(j.Reason)
		if len(reason) > 80 {
			reason = reason[:77] + "..."
		}
		ttft := "-"
		if j.TTFT > 0 {
			ttft = humanDuration(j.TTFT)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s r%d\t%s\t%s\t%s\t%s\t%s\n", j.Started.UTC().Format(time.DateTime), j.Op, j.To.Color, j.To.Revision,
			j.To.Image, j.Status, j.Step, ttft, reason)
	}
	return tw.Flush()
}

func runHistory(ctx context.Context, o *historyOptions) error {
	t, err := newDeployTarget(ctx, o.f, o.target, nil)
	if err != nil {
		return err
	}
	st, err := t.runner().Current(ctx)
	if err != nil {
		return err
	}
	if st.Journals == nil {
		st.Journals = []rollout.Journal{}
	}
	views := make([]journalView, len(st.Journals))
	for i, j := range st.Journals {
		views[i] = newJournalView(j)
	}
	return printOutput(o.f.IO.Out, o.f.Output, views, func(w io.Writer) error { return printHistory(w, st.Journals) })
}
