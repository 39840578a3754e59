// Package registrytest runs a real container registry (CNCF distribution, built
// by hack/ollama-build.sh) on a free loopback port for integration tests, with
// optional basic auth, and stops it by PID when the test ends.
package registrytest
