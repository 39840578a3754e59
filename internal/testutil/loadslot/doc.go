// Package loadslot gives the integration tests that put a model under load
// and judge what clients saw (no failed request at 100 req/s and more) the
// machine one at a time, across test binaries: on two shared cores, two such
// tests beside each other measure each other's load, not the product.
// `make test` runs them after the other tests, one package at a time (the
// Makefile's LOADTESTS, which must list every test that calls Take).
package loadslot
