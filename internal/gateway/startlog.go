package gateway

import (
	"fmt"
	"strings"

	"github.com/aideploy/aideploy/internal/gateway/adminapi"
	"github.com/aideploy/aideploy/internal/gateway/cache"
	"github.com/aideploy/aideploy/internal/gateway/upstream"
)

// The start-up line says what is on, so that a gateway running without
// what its operator meant (no admin token for rollouts, auth or limits
// left off) is seen at start rather than at the first incident.

func adminAPIState(token string) string {
	if token == "" {
		return "off (rollouts cannot switch traffic; set gateway.adminTokenFile or " + adminapi.TokenEnv + ")"
	}
	return "on"
}

func poolsSummary(pools []upstream.PoolConfig) string {
	parts := make([]string, len(pools))
	for i, p := range pools {
		parts[i] = fmt.Sprintf("%s (%s)", p.Name, plural(len(p.Targets), "target"))
	}
	return strings.Join(parts, ", ")
}

func authState(a Auth) string {
	if !a.Enabled {
		return "off"
	}
	return "on, " + plural(len(a.Keys), "key")
}

func cacheState(c cache.Config, redis bool) string {
	if !c.Enabled {
		return "off"
	}
	s := "L1 " + c.L1MaxBytes.String()
	if redis && c.L2.Enabled {
		s += " + L2 in Redis"
	}
	return s + ", ttl " + c.TTL.String()
}

func limitsState(c Config) string {
	if !c.Limits.Enabled {
		return "off"
	}
	return c.Effective().Limits.Backend
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}
