// Package ollamatest runs a real inference engine for integration tests: the
// Ollama server that hack/ollama-build.sh builds, on a free loopback port,
// serving the tiny random-weight model it generates, or as a FROM scratch
// image for Docker tests. Tests can find and kill the model runner to crash a
// generation, and stop the server by its process group.
package ollamatest
