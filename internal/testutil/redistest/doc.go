// Package redistest starts a real redis-server for integration tests on a free loopback
// port, without persistence, and stops it when the test ends. Tests can kill and restart
// it to check behaviour while Redis is down. Under -short it skips the test.
package redistest
