#!/usr/bin/env bash
# Builds the control plane used by the Kubernetes integration tests from the Go
# module proxy (module hack/k8s-tools) into .cache/k8s/bin. It rebuilds only
# when a binary is missing or the tools module or this script changed.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tools="$root/hack/k8s-tools"
bin="${K8S_BIN_DIR:-$root/.cache/k8s/bin}"
kube_version="v1.37.2"
binaries=(kube-apiserver kube-controller-manager kube-scheduler kubectl etcd kwok certs)

stamp() {
	(
		cd "$tools"
		find . -name '*.go' | LC_ALL=C sort | xargs cat go.mod go.sum "$root/hack/k8s-build.sh"
	) | sha256sum | cut -d' ' -f1
}

up_to_date() {
	[[ -f "$bin/.stamp" && "$(cat "$bin/.stamp")" == "$(stamp)" ]] || return 1
	local b
	for b in "${binaries[@]}"; do
		[[ -x "$bin/$b" ]] || return 1
	done
}

# One build at a time: a second run (two checkouts' tests, make test twice)
# waits here, then finds the first one's result.
mkdir -p "$bin"
exec 9>"$bin/.lock"
flock 9

if up_to_date; then
	exit 0
fi

if ! command -v go >/dev/null; then
	echo "k8s-build: go is not on PATH; install Go 1.26 to build the test control plane" >&2
	exit 1
fi

major="${kube_version#v}"
major="${major%%.*}"
minor="${kube_version#v*.}"
minor="${minor%%.*}"
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
	ldflags+=" -X $pkg.gitVersion=$kube_version -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
	ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done

echo "k8s-build: building ${binaries[*]} into $bin (about 12 minutes the first time)" >&2
mkdir -p "$bin"
rm -f "$bin/.stamp"
start=$SECONDS
(
	cd "$tools"
	CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$bin/" \
		k8s.io/kubernetes/cmd/kube-apiserver \
		k8s.io/kubernetes/cmd/kube-controller-manager \
		k8s.io/kubernetes/cmd/kube-scheduler \
		k8s.io/kubernetes/cmd/kubectl \
		sigs.k8s.io/kwok/cmd/kwok \
		./etcd \
		./certs
)
stamp >"$bin/.stamp"
echo "k8s-build: done in $((SECONDS - start))s" >&2
