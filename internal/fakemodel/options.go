package fakemodel

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/aideploy/aideploy/internal/validate"
)

// EnvPrefix starts the name of every environment variable that sets a knob:
// the flag -token-delay is FAKEMODEL_TOKEN_DELAY.
const EnvPrefix = "FAKEMODEL_"

// ErrUsage marks every error of ParseFlags but flag.ErrHelp: a bad flag, variable or value.
var ErrUsage = errors.New("bad usage; run fakemodel -h for the knobs")

// Options are the knobs of one fake model server.
type Options struct {
	// Listen is a TCP address (":8000") or a unix socket ("unix:///run/model.sock").
	Listen string
	// Model is the model id served by /v1/models and echoed when a request names none.
	Model string
	// Version is sent in every answer: header X-Model-Version and JSON field system_fingerprint.
	Version string
	// Tokens is how many output tokens a request gets when its max_tokens is unset or larger.
	Tokens int
	// EmbeddingDim is the length of each embedding vector.
	EmbeddingDim int
	// TokenDelay is the wait before each output token after the first.
	TokenDelay time.Duration
	// FirstTokenDelay is the wait before the first output token (time to first token).
	FirstTokenDelay time.Duration
	// StartupDelay is how long /health and /ready answer 503 "loading" after start.
	StartupDelay time.Duration
	// FailureRate is the fraction of model requests answered 500, spread evenly (0.25: every 4th).
	FailureRate float64
	// FailAfter, when positive, makes every model request fail with 500 once it has passed since start.
	FailAfter time.Duration
	// CrashAfter, when positive, makes Run return ErrCrash (the binary exits 1) once it has passed.
	CrashAfter time.Duration
	// Hang makes every endpoint but /stats wait until the client goes away, never answering.
	Hang bool
	// HealthFail makes /health and /ready always answer 503 "unhealthy".
	HealthFail bool
	// ShutdownTimeout bounds how long a graceful shutdown waits for requests in flight.
	ShutdownTimeout time.Duration
	// HealthCheck, when set, makes the binary GET this URL and exit 0 on 2xx, 1 otherwise.
	HealthCheck string
	// FinishReason, when set, is the finish_reason of every answer (e.g. "length":
	// a version that stops early), whatever the tokens; "" reports stop, or
	// length when max_tokens cut the answer.
	FinishReason string
	// Slots, when positive, is how many model requests are worked on at once; the rest wait
	// in arrival order for a free slot, as a real engine's scheduler queues them.
	Slots int
}

// DefaultOptions returns the options of a fast, healthy server on :8000.
func DefaultOptions() Options {
	return Options{
		Listen:          ":8000",
		Model:           "fake-model",
		Version:         "v1",
		Tokens:          16,
		EmbeddingDim:    8,
		ShutdownTimeout: 10 * time.Second,
	}
}

// Validate records every problem with the options; it does no I/O.
func (o Options) Validate(errs validate.Errors) {
	if o.Listen == "" {
		errs.Addf("listen", "must not be empty; use :8000 or unix:///path.sock")
	}
	errs.Positive("tokens", o.Tokens)
	errs.Positive("embeddingDim", o.EmbeddingDim)
	errs.NonNegative("slots", o.Slots)
	if o.FailureRate < 0 || o.FailureRate > 1 {
		errs.Addf("failureRate", "(%v) must be between 0 and 1", o.FailureRate)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"tokenDelay", o.TokenDelay}, {"firstTokenDelay", o.FirstTokenDelay}, {"startupDelay", o.StartupDelay},
		{"failAfter", o.FailAfter}, {"crashAfter", o.CrashAfter}, {"shutdownTimeout", o.ShutdownTimeout},
	} {
		if d.v < 0 {
			errs.Addf(d.name, "(%s) must not be negative", d.v)
		}
	}
}

// OptionsFromEnv returns the defaults overridden by FAKEMODEL_* variables.
func OptionsFromEnv(getenv func(string) string) (Options, error) {
	return ParseFlags(nil, getenv, io.Discard)
}

// ParseFlags returns the defaults overridden by FAKEMODEL_* variables, then by flags in args.
// Usage and flag errors are written to usage; -h returns flag.ErrHelp.
func ParseFlags(args []string, getenv func(string) string, usage io.Writer) (Options, error) {
	o := DefaultOptions()
	fs := flag.NewFlagSet("fakemodel", flag.ContinueOnError)
	fs.SetOutput(usage)
	fs.StringVar(&o.Listen, "listen", o.Listen, "address to serve on: host:port or unix:///path.sock")
	fs.StringVar(&o.Model, "model", o.Model, "model id")
	fs.StringVar(&o.Version, "version", o.Version, "version string sent in every answer")
	fs.IntVar(&o.Tokens, "tokens", o.Tokens, "output tokens per request (capped by max_tokens)")
	fs.IntVar(&o.EmbeddingDim, "embedding-dim", o.EmbeddingDim, "embedding vector length")
	fs.DurationVar(&o.TokenDelay, "token-delay", o.TokenDelay, "wait before each output token after the first")
	fs.DurationVar(&o.FirstTokenDelay, "first-token-delay", o.FirstTokenDelay, "wait before the first output token")
	fs.DurationVar(&o.StartupDelay, "startup-delay", o.StartupDelay, "health answers 503 loading for this long")
	fs.Float64Var(&o.FailureRate, "failure-rate", o.FailureRate, "fraction of model requests answered 500")
	fs.DurationVar(&o.FailAfter, "fail-after", o.FailAfter, "fail every model request once this has passed (0: never)")
	fs.DurationVar(&o.CrashAfter, "crash-after", o.CrashAfter, "exit 1 once this has passed (0: never)")
	fs.BoolVar(&o.Hang, "hang", o.Hang, "never answer (except /stats)")
	fs.BoolVar(&o.HealthFail, "health-fail", o.HealthFail, "health and ready always answer 503")
	fs.DurationVar(&o.ShutdownTimeout, "shutdown-timeout", o.ShutdownTimeout, "how long SIGTERM waits for requests in flight")
	fs.StringVar(&o.FinishReason, "finish-reason", o.FinishReason, "finish_reason of every answer (empty: stop, or length at max_tokens)")
	fs.IntVar(&o.Slots, "slots", o.Slots, "model requests worked on at once, the rest queue (0: no bound)")
	fs.StringVar(&o.HealthCheck, "healthcheck", o.HealthCheck, "GET this URL and exit 0 if it answers 2xx, else 1")

	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		name := EnvPrefix + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v := getenv(name); v != "" && envErr == nil {
			if err := fs.Set(f.Name, v); err != nil {
				envErr = fmt.Errorf("%w: reading %s=%q: %w", ErrUsage, name, v, err)
			}
		}
	})
	if envErr != nil {
		return Options{}, envErr
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return Options{}, err
		}
		return Options{}, fmt.Errorf("%w: %w", ErrUsage, err)
	}
	if fs.NArg() > 0 {
		return Options{}, fmt.Errorf("%w: unexpected argument %q", ErrUsage, fs.Arg(0))
	}
	errs := validate.New()
	o.Validate(errs)
	if list := errs.List(); len(list) > 0 {
		all := make([]error, len(list))
		for i, e := range list {
			all[i] = e
		}
		return Options{}, fmt.Errorf("%w: invalid options: %w", ErrUsage, errors.Join(all...))
	}
	return o, nil
}
