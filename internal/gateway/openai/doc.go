// Package openai knows the OpenAI-compatible routes the gateway understands:
// it reads model, stream and max_tokens from a request, token usage from a
// response or a stream's last chunk, and writes OpenAI-style error bodies.
package openai
