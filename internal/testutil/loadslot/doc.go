// Package loadslot gives the integration tests that put a model under load
// and judge what clients saw (no failed request at 100 req/s and more) the
// machine one at a time, across test binaries: on two shared cores, two such
// tests beside each other measure each other's load, not the product.
package loadslot
