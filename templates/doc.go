// Package templates embeds the text templates that internal/render fills from
// aideploy.yaml. They live at the top of the repository so they are easy to find
// and review; Go's embed needs a package beside them, which is this one.
package templates
