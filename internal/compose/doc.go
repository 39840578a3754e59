// Package compose is the Docker platform of rollouts: it reads the service from
// the rendered compose file and runs its colours as labelled containers on the
// Docker engine, where the lock and the rollout journal live too.
package compose
