package openai

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/buger/jsonparser"

	"github.com/aideploy/aideploy/internal/gateway/jsonscan"
)

// Request is what the gateway needs to know about an OpenAI request body.
type Request struct {
	Model  string
	Stream bool
	// MaxTokens is the larger of max_tokens and max_completion_tokens: model
	// servers differ in which one wins, so the budget takes the one that
	// costs more.
	MaxTokens int64
	// IncludeUsage says whether the client asked for usage in the stream itself.
	IncludeUsage bool
	// N is the number of choices asked for; 0 when the body leaves it out.
	N int64
	// Temperature is the sampling temperature when HasTemperature.
	Temperature    float64
	HasTemperature bool
	// HasSeed says the body fixes the sampler's seed.
	HasSeed bool
}

// Sampled says whether the answer is drawn at random: a temperature above 0
// or none (the API's default is 1), or several choices, and no seed to make
// the draw repeatable. Storing such an answer would give every caller the
// same "random" draw.
func (r Request) Sampled() bool {
	return (!r.HasTemperature || r.Temperature > 0 || r.N > 1) && !r.HasSeed
}

// ErrMalformed marks a body that is not a JSON object with the expected field types.
var ErrMalformed = errors.New("malformed request body")

// ErrDuplicateKey marks a body that names a field the gateway reads twice.
// JSON parsers disagree on which of two equal keys wins (first, last, or an
// error), so the gateway would account one value while the model server acts
// on the other: such a body is refused rather than guessed at.
var ErrDuplicateKey = errors.New("duplicate key")

// The top-level fields the gateway reads, one bit each for the duplicate check.
const (
	fModel = 1 << iota
	fStream
	fStreamOptions
	fMaxTokens
	fMaxCompletionTokens
	fN
	fTemperature
	fSeed
)

var readFields = map[string]int{
	"model": fModel, "stream": fStream, "stream_options": fStreamOptions,
	"max_tokens": fMaxTokens, "max_completion_tokens": fMaxCompletionTokens,
	"n": fN, "temperature": fTemperature, "seed": fSeed,
}

// ParseRequest reads the fields the gateway routes, limits and caches by. It
// validates the whole body but decodes only those fields, in one pass over
// the top-level members and without allocating a tree: this runs on every
// OpenAI request. A field the gateway reads that appears twice (after
// unescaping its key, as any decoder would) is ErrDuplicateKey.
func ParseRequest(body []byte) (Request, error) {
	if !jsonscan.Valid(body) {
		var v any
		err := json.Unmarshal(body, &v)
		return Request{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if body[jsonscan.Space(body, 0)] != '{' { // Valid: a value follows any space
		return Request{}, fmt.Errorf("%w: the body must be a JSON object", ErrMalformed)
	}
	var r Request
	var maxTokens, maxCompletion int64
	seen := 0
	err := jsonparser.ObjectEach(body, func(k, v []byte, vt jsonparser.ValueType, _ int) error {
		f, ok := readFields[string(k)]
		if !ok {
			return nil
		}
		if seen&f != 0 {
			return fmt.Errorf("%w: %w: %q appears more than once; send each field once", ErrMalformed, ErrDuplicateKey, k)
		}
		seen |= f
		if vt == jsonparser.Null {
			return nil // as if left out, which is what model servers make of null
		}
		var err error
		switch f {
		case fModel:
			if err = want(k, vt, jsonparser.String); err == nil {
				r.Model, err = jsonparser.ParseString(v)
			}
		case fStream:
			if err = want(k, vt, jsonparser.Boolean); err == nil {
				r.Stream = v[0] == 't'
			}
		case fStreamOptions:
			if err = want(k, vt, jsonparser.Object); err == nil {
				r.IncludeUsage, err = includeUsage(v)
			}
		case fMaxTokens:
			maxTokens, err = integer(k, v, vt)
		case fMaxCompletionTokens:
			maxCompletion, err = integer(k, v, vt)
		case fN:
			r.N, err = integer(k, v, vt)
		case fSeed:
			_, err = integer(k, v, vt)
			r.HasSeed = err == nil
		case fTemperature:
			if err = want(k, vt, jsonparser.Number); err == nil {
				r.Temperature, err = strconv.ParseFloat(string(v), 64)
				r.HasTemperature = err == nil
			}
		}
		if err != nil && !errors.Is(err, ErrMalformed) {
			err = fmt.Errorf("%w: %s: %v", ErrMalformed, k, err)
		}
		return err
	})
	if err != nil && !errors.Is(err, ErrMalformed) {
		err = fmt.Errorf("%w: %v", ErrMalformed, err) // jsonparser's own, e.g. an escape it cannot decode
	}
	if err != nil {
		return Request{}, err
	}
	r.MaxTokens = max(maxTokens, maxCompletion)
	return r, nil
}

// includeUsage reads stream_options.include_usage, refusing it twice.
func includeUsage(opts []byte) (bool, error) {
	var on, seen bool
	err := jsonparser.ObjectEach(opts, func(k, v []byte, vt jsonparser.ValueType, _ int) error {
		if string(k) != "include_usage" {
			return nil
		}
		if seen {
			return fmt.Errorf("%w: %w: \"stream_options.include_usage\" appears more than once; send each field once", ErrMalformed, ErrDuplicateKey)
		}
		seen = true
		if vt == jsonparser.Null {
			return nil
		}
		if err := want([]byte("stream_options.include_usage"), vt, jsonparser.Boolean); err != nil {
			return err
		}
		on = v[0] == 't'
		return nil
	})
	return on, err
}

func want(k []byte, got, want jsonparser.ValueType) error {
	if got != want {
		return fmt.Errorf("%w: field %s must be a %s", ErrMalformed, k, typeName(want))
	}
	return nil
}

func integer(k, v []byte, vt jsonparser.ValueType) (int64, error) {
	if err := want(k, vt, jsonparser.Number); err != nil {
		return 0, err
	}
	n, err := strconv.ParseInt(string(v), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: %s must be an integer", ErrMalformed, k)
	}
	return n, nil
}

func typeName(t jsonparser.ValueType) string {
	switch t {
	case jsonparser.String:
		return "string"
	case jsonparser.Boolean:
		return "boolean"
	case jsonparser.Object:
		return "object"
	}
	return "number"
}
