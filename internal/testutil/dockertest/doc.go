// Package dockertest builds the images tests run on the real Docker engine:
// from a build context, tagged, and removed when the test ends.
package dockertest
