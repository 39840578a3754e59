package rollout

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// AnalysisError says the analysis failed the new version at a step.
type AnalysisError struct {
	Step    string // e.g. "canary step 1/3 (5%)"
	Verdict Verdict
}

func (e *AnalysisError) Error() string {
	return fmt.Sprintf("%s: analysis %s", e.Step, e.Verdict.Reason)
}

// AbortError says an operator aborted the rollout.
type AbortError struct {
	By   string
	Step string
}

func (e *AbortError) Error() string {
	by := ""
	if e.By != "" {
		by = " by " + e.By
	}
	return fmt.Sprintf("aborted%s at %s (`aideploy rollout abort`)", by, e.Step)
}

// progressiveAllowed refuses canary and shadow where the platform cannot split traffic.
func (r *Runner) progressiveAllowed(ctx context.Context, serving bool) error {
	if !r.Config.Progressive() || !serving {
		return nil
	}
	if r.Config.Surge > 0 {
		return fmt.Errorf("rollout.strategy %s runs both versions side by side and cannot replace replicas in batches (rollout.surge); set surge to 0 or use bluegreen", r.Config.Strategy)
	}
	if _, ok := r.Platform.(Splitter); !ok {
		return fmt.Errorf("rollout.strategy %s needs a traffic switch that can share requests between two versions and measure each, which this target lacks; use --strategy bluegreen", r.Config.Strategy)
	}
	if sr, ok := r.Platform.(SplitRefuser); ok {
		if err := sr.SplitRefusal(ctx); err != nil {
			return fmt.Errorf("rollout.strategy %s: %w", r.Config.Strategy, err)
		}
	}
	return nil
}

func (r *Runner) progressiveSummary() string {
	if r.Config.Strategy == StrategyShadow {
		return fmt.Sprintf("shadow: mirror %d%% of requests to it for %s, judged against the serving version, then switch", r.Config.Shadow.Percent, r.Config.Shadow.For)
	}
	var ws []string
	for _, s := range r.Config.Canary.Steps {
		ws = append(ws, fmt.Sprintf("%d%% for %s", s.Weight, s.For))
	}
	return "canary: " + strings.Join(ws, ", ") + ", then 100%"
}

// startProgress joins the new colour to the pool beside the serving one, once.
func (r *Runner) startProgress(ctx context.Context, j *Journal) error {
	if j.Progress == nil {
		j.Progress = &Progress{Steps: len(r.Config.Canary.Steps)}
	}
	if !j.Progress.Joined {
		// Record before acting: a run killed inside the join (tagged targets, a
		// split, the new colour added) must take it all back on undo.
		j.Progress.Joined, j.Updated = true, r.now()
		if err := r.Platform.Record(ctx, *j); err != nil {
			return fmt.Errorf("recording the join: %w", err)
		}
	}
	// Join is idempotent: a resumed run calls it again, in case the kill came inside it.
	if err := r.splitter().Join(ctx, j.To, *j.From); err != nil {
		return fmt.Errorf("adding %s to the traffic pool beside %s: %w", j.To, j.From, err)
	}
	return nil
}

func (r *Runner) splitter() Splitter {
	sp, _ := r.Platform.(Splitter)
	return sp
}

// canary walks the steps from the journal's one: set the share, judge it, go on.
func (r *Runner) canary(ctx context.Context, j *Journal) (string, error) {
	if err := r.startProgress(ctx, j); err != nil {
		return "", err
	}
	cfg := r.Config.Canary
	steps := cfg.Steps
	for i := j.Progress.Index; i < len(steps); i++ {
		s := steps[i]
		// Record the step before acting: a run killed while setting its share resumes at this step.
		j.Progress.Index, j.Progress.Weight, j.Progress.Steps, j.Updated = i, s.Weight, len(steps), r.now()
		if err := r.Platform.Record(ctx, *j); err != nil {
			return "", fmt.Errorf("recording canary step %d: %w", i+1, err)
		}
		share := map[Color]int{j.To.Color: s.Weight, j.From.Color: 100 - s.Weight}
		if err := r.splitter().SetSplit(ctx, share, cfg.Sticky, j.From.Color); err != nil {
			return "", fmt.Errorf("setting the split to %d%% on %s: %w", s.Weight, j.To, err)
		}
		name := fmt.Sprintf("canary step %d/%d (%d%%)", i+1, len(steps), s.Weight)
		r.emitStep(StepCanary, EventInfo, fmt.Sprintf("%s: %d%% of requests to %s, %d%% to %s, for %s", name, s.Weight, j.To, 100-s.Weight, j.From, s.For), j, nil)
		promote, v, err := r.judge(ctx, j, name, s.For.D(), false)
		if err != nil {
			return "", err
		}
		if promote {
			return fmt.Sprintf("promoted by an operator at %s", name), nil
		}
		r.emitStep(StepCanary, EventInfo, name+" passed: "+v.Reason, j, &v)
	}
	return fmt.Sprintf("%d step(s) passed, up to %d%%", len(steps), j.Progress.Weight), nil
}

// shadow mirrors a share of requests to the new colour and judges its answers.
func (r *Runner) shadow(ctx context.Context, j *Journal) (string, error) {
	if err := r.startProgress(ctx, j); err != nil {
		return "", err
	}
	pct := r.Config.Shadow.Percent
	if err := r.splitter().SetShadow(ctx, j.To.Color, pct); err != nil {
		return "", fmt.Errorf("mirroring %d%% of requests to %s: %w", pct, j.To, err)
	}
	j.Progress.Weight, j.Updated = pct, r.now()
	if err := r.Platform.Record(ctx, *j); err != nil {
		return "", fmt.Errorf("recording the shadow: %w", err)
	}
	name := fmt.Sprintf("shadow (%d%% mirrored)", pct)
	r.emitStep(StepShadow, EventInfo, fmt.Sprintf("%s: %d%% of requests mirrored to %s, clients answered by %s only, for %s", name, pct, j.To, j.From, r.Config.Shadow.For), j, nil)
	promote, v, err := r.judge(ctx, j, name, r.Config.Shadow.For.D(), true)
	if err != nil {
		return "", err
	}
	if promote {
		return "promoted by an operator during the shadow", nil
	}
	return "shadow passed: " + v.Reason, nil
}

// promote moves all traffic to the new colour and takes the old one out of the pool, drained.
func (r *Runner) promote(ctx context.Context, j *Journal) error {
	sp := r.splitter()
	if j.Strategy == StrategyShadow {
		if err := sp.SetShadow(ctx, j.To.Color, 0); err != nil {
			return fmt.Errorf("stopping the mirror: %w", err)
		}
	}
	if err := sp.SetSplit(ctx, map[Color]int{j.To.Color: 100, j.From.Color: 0}, r.Config.Canary.Sticky, j.From.Color); err != nil {
		return r.keepInstead(ctx, j, j.To, *j.From, err)
	}
	if err := sp.Keep(ctx, j.To, *j.From); err != nil {
		return fmt.Errorf("taking %s out of the traffic pool: %w", j.From, err)
	}
	return nil
}

// keepInstead leaves keep alone in the pool when the split that should have
// sent it every request first was refused: a gateway that restarted since
// the join lost the rollout's targets and refuses a split naming them, and
// an undo or a promotion must not stop there. Keep puts keep's replicas in
// alone all the same, drop's drained.
func (r *Runner) keepInstead(ctx context.Context, j *Journal, keep, drop Deployment, splitErr error) error {
	r.emit(j.Step, EventInfo, 0, fmt.Sprintf("the split to %s was refused (%v): leaving it alone in the pool instead", keep, splitErr))
	if err := r.splitter().Keep(ctx, keep, drop); err != nil {
		return fmt.Errorf("sending all requests to %s: %w; then leaving it alone in the traffic pool: %w", keep, splitErr, err)
	}
	return nil
}

// unsplit sends every request back to the serving colour in one call, then
// takes the new one out of the pool, drained: an abort, or the undo of a failed
// or interrupted canary.
func (r *Runner) unsplit(ctx context.Context, j *Journal) error {
	sp := r.splitter()
	if sp == nil {
		return errors.New("this target cannot split traffic: take the new version out of the gateway pool by hand")
	}
	t0 := r.now()
	if err := sp.SetSplit(ctx, map[Color]int{j.From.Color: 100, j.To.Color: 0}, r.Config.Canary.Sticky, j.From.Color); err != nil {
		if err := r.keepInstead(ctx, j, *j.From, j.To, err); err != nil {
			return err
		}
		j.Progress.Weight = 0
		return nil
	}
	if err := sp.SetShadow(ctx, j.To.Color, 0); err != nil {
		return fmt.Errorf("stopping the mirror to %s: %w", j.To, err)
	}
	r.emit(j.Step, EventInfo, r.since(t0), "all requests back on "+j.From.String())
	if err := sp.Keep(ctx, *j.From, j.To); err != nil {
		return fmt.Errorf("taking %s out of the traffic pool: %w", j.To, err)
	}
	j.Progress.Weight = 0
	return nil
}

// commandPoll is how often a step looks for operator commands between two
// reads of the figures, so that an abort acts within a second whatever the
// analysis interval.
const commandPoll = 500 * time.Millisecond

// judge holds a step for d of running time (pauses stop the clock), reading
// the figures every interval: a failure ends it at once; a pass ends it once d
// is up; too few samples wait up to maxWait more, then hold until an operator
// says what to do. Operator commands are obeyed within commandPoll.
func (r *Runner) judge(ctx context.Context, j *Journal, name string, d time.Duration, shadow bool) (promote bool, last Verdict, err error) {
	a := r.Config.Canary.Analysis
	interval := max(a.Interval.D(), 10*time.Millisecond)
	start, prev := r.now(), r.now()
	var ran, ranAtRead time.Duration
	var lastRead time.Time
	read, have := false, false
	deadline := d + a.MaxWait.D()
	step := StepCanary
	if shadow {
		step = StepShadow
	}
	if j.Progress.Paused {
		// A resumed run keeps the pause or hold it was killed in.
		r.emitStep(step, EventInfo, fmt.Sprintf("%s stays paused, as it was when the last run stopped: `aideploy rollout resume`, `promote` or `abort`", name), j, nil)
	}
	for {
		now := r.now()
		if !j.Progress.Paused {
			ran += now.Sub(prev)
		}
		prev = now
		cmd, cerr := r.takeCommand(ctx, *j)
		if cerr != nil {
			r.emit(step, EventInfo, 0, "reading operator commands: "+cerr.Error())
		}
		if cmd != nil {
			switch cmd.Verb {
			case VerbPromote:
				r.emitStep(step, EventInfo, fmt.Sprintf("promote by %s at %s", byName(cmd.By), name), j, nil)
				return true, last, nil
			case VerbAbort:
				return false, last, &AbortError{By: cmd.By, Step: name}
			case VerbPause, VerbResume:
				paused := cmd.Verb == VerbPause
				if !paused && j.Progress.Held != "" {
					deadline = ran + a.MaxWait.D() // another maxWait of waiting for data
				}
				j.Progress.Paused, j.Progress.Held, j.Updated = paused, "", r.now()
				if err := r.Platform.Record(ctx, *j); err != nil {
					return false, last, fmt.Errorf("recording %s: %w", cmd.Verb, err)
				}
				r.emitStep(step, EventInfo, fmt.Sprintf("%s by %s at %s", cmd.Verb, byName(cmd.By), name), j, nil)
			}
		}
		timeUp := !j.Progress.Paused && ran >= d
		// Read every interval, and once more when the step's time is up, so a pass is judged on figures that cover it.
		if !read || now.Sub(lastRead) >= interval || (timeUp && ranAtRead < d) {
			read, lastRead, ranAtRead = true, now, ran
			v, ok := r.readVerdict(ctx, *j, now.Sub(start), shadow)
			have = ok
			if ok {
				last = v
				r.emitStep(step, EventProgress, fmt.Sprintf("%s, %s of %s: %s", name, round(min(ran, d)), d, v.Reason), j, &v)
				if v.Outcome == OutcomeFail {
					return false, v, &AnalysisError{Step: name, Verdict: v}
				}
			}
		}
		if timeUp {
			if have && last.Outcome == OutcomePass {
				return false, last, nil
			}
			if ran >= deadline {
				why := "no figures could be read"
				if have {
					why = last.Reason
				}
				j.Progress.Paused, j.Progress.Held, j.Updated = true, why, r.now()
				if err := r.Platform.Record(ctx, *j); err != nil {
					return false, last, fmt.Errorf("recording the hold: %w", err)
				}
				r.emitStep(step, EventInfo, fmt.Sprintf("%s holds at %d%%: still %s after rollout.canary.analysis.maxWait (%s); nothing is rolled back or promoted on no data — run `aideploy rollout promote`, `abort` or `resume` (waits another maxWait)",
					name, j.Progress.Weight, why, a.MaxWait), j, &last)
			}
		}
		if err := r.sleep(ctx, min(interval, commandPoll)); err != nil {
			return false, last, err
		}
	}
}

// readVerdict judges the new colour's figures over the window against the serving one's.
func (r *Runner) readVerdict(ctx context.Context, j Journal, window time.Duration, shadow bool) (Verdict, bool) {
	gs, err := r.splitter().GroupStats(ctx, max(window, time.Second))
	if err != nil {
		r.emit(j.Step, EventInfo, 0, "reading per-version figures: "+err.Error()+" (counted as no data)")
		return Verdict{}, false
	}
	serving, cand := pick(gs, j.From.Color, false), pick(gs, j.To.Color, shadow)
	return Judge(r.Config.Canary.Analysis, serving, cand), true
}

func pick(gs []GroupStats, c Color, shadow bool) GroupStats {
	for _, g := range gs {
		if g.Color == c && g.Shadow == shadow {
			return g
		}
	}
	return GroupStats{Color: c, Shadow: shadow}
}

// takeCommand returns an operator command given since this run started, or nil.
func (r *Runner) takeCommand(ctx context.Context, j Journal) (*Command, error) {
	cm, ok := r.Platform.(Commander)
	if !ok {
		return nil, nil
	}
	c, err := cm.TakeCommand(ctx)
	if err != nil || c == nil {
		return nil, err
	}
	if c.At.Before(j.Started) {
		r.emit(j.Step, EventInfo, 0, fmt.Sprintf("ignoring %s given at %s, before this run", c.Verb, c.At.UTC().Format(time.RFC3339)))
		return nil, nil
	}
	return c, nil
}

// StepReport is what an event of a canary or shadow step carries for --output json and webhooks.
type StepReport struct {
	Strategy string   `json:"strategy"`
	Index    int      `json:"index"` // canary step, 0-based
	Steps    int      `json:"steps,omitempty"`
	Weight   int      `json:"weight"`
	Serving  Color    `json:"serving"`
	Canary   Color    `json:"canary"`
	Paused   bool     `json:"paused,omitempty"`
	Held     string   `json:"held,omitempty"`
	Verdict  *Verdict `json:"verdict,omitempty"`
}

func (r *Runner) emitStep(s Step, k EventKind, msg string, j *Journal, v *Verdict) {
	if r.Observe == nil {
		return
	}
	rep := &StepReport{Strategy: j.Strategy, Weight: j.Progress.Weight, Index: j.Progress.Index, Steps: j.Progress.Steps,
		Serving: j.From.Color, Canary: j.To.Color, Paused: j.Progress.Paused, Held: j.Progress.Held, Verdict: v}
	r.Observe(Event{Time: r.now(), Step: s, Kind: k, Message: msg, Progress: rep})
}

func byName(by string) string {
	if by == "" {
		return "an operator"
	}
	return by
}
