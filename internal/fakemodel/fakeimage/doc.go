// Package fakeimage builds a FROM scratch container image of the fake model server through the
// Docker Engine API, for the Docker rollout tests and the demo. It owns the image's Dockerfile
// (version env, port, non-root user, health check) and the static build of the binary.
package fakeimage
