package rollout

import "context"

// SplitRefuser is a Splitter that can only split traffic in some setups
// (on Kubernetes, through its gateway): SplitRefusal says, before a canary or
// shadow rollout creates anything, why this one cannot; nil when it can.
type SplitRefuser interface {
	SplitRefusal(ctx context.Context) error
}
