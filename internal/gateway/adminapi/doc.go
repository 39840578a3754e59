// Package adminapi is the contract of the gateway's admin API: the JSON types
// and a small client. Rollouts drive traffic through it; the gateway serves it.
// Keeping both sides on these types is what makes a switch atomic and checkable.
package adminapi
