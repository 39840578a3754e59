// Package ollamatest runs a real inference engine for integration tests: the
// Ollama server that hack/ollama-build.sh builds, on a free loopback port,
// serving the tiny random-weight model it generates. Tests can find and kill
// the model runner to crash a generation, and stop the server by its PID.
package ollamatest
