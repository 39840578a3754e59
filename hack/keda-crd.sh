#!/usr/bin/env bash
# Copies KEDA's ScaledObject CustomResourceDefinition out of KEDA's Go module
# (from the Go module proxy, like the control plane of hack/k8s-build.sh) into
# .cache/keda/<version>/, for the test control plane: the API server then
# validates the rendered ScaledObject against KEDA's own schema. Prints the
# path of the CRD file. Nothing is built; KEDA's operator does not run.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# The newest KEDA whose go.mod the Go of this repository (1.26) accepts.
version="${KEDA_VERSION:-v2.20.2}"
out="${KEDA_CRD_DIR:-$root/.cache/keda/$version}"
crd="$out/keda.sh_scaledobjects.yaml"

# One build at a time: a second run (two checkouts' tests, make test twice)
# waits here, then finds the first one's result.
mkdir -p "$out"
exec 9>"$out/.lock"
flock 9

if [[ -s "$crd" ]]; then
	echo "$crd"
	exit 0
fi
if ! command -v go >/dev/null; then
	echo "keda-crd: go is not on PATH; install Go 1.26 to fetch KEDA's CRD" >&2
	exit 1
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
# Outside any module, so the download touches no go.mod.
json="$(cd "$tmp" && GOFLAGS=-mod=mod go mod download -json "github.com/kedacore/keda/v2@$version")"
dir="$(printf '%s\n' "$json" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')"
if [[ -z "$dir" || ! -f "$dir/config/crd/bases/keda.sh_scaledobjects.yaml" ]]; then
	echo "keda-crd: the module github.com/kedacore/keda/v2@$version has no config/crd/bases/keda.sh_scaledobjects.yaml:" >&2
	printf '%s\n' "$json" >&2
	exit 1
fi
mkdir -p "$out"
cp "$dir/config/crd/bases/keda.sh_scaledobjects.yaml" "$crd.tmp"
chmod 0644 "$crd.tmp"
mv "$crd.tmp" "$crd"
echo "$crd"
