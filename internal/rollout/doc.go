// Package rollout owns the blue/green strategy as a state machine: plan, lock,
// create the new colour, wait until healthy, warm up, switch, watch, drain, retire.
// It knows nothing of Docker or Kubernetes; platforms implement the Platform interface.
package rollout
