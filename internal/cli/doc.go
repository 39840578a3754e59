// Package cli builds aideploy's command tree. Each command parses flags into an
// options struct and hands it to a run function; clients come from a Factory so
// tests can swap them. Exit codes are decided in one place, ExitCode.
package cli
