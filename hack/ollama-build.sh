#!/usr/bin/env bash
# Builds what the real-engine and registry tests run, from the Go module proxy
# (module hack/ollama-tools), into .cache/ollama:
#   bin/ollama    Ollama (llama.cpp through cgo), static, so it also runs FROM scratch
#   bin/registry  the CNCF distribution registry, for Docker pulls from loopback
#   models/       OLLAMA_MODELS holding the tiny random-weight model "aideploy-tiny"
# It rebuilds only when something is missing or the tools module or this script
# changed. Ollama takes about 10 minutes cold on 2 idle cores (31 measured on
# 2 cores busy with other builds); later runs take no time.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tools="$root/hack/ollama-tools"
out="${OLLAMA_CACHE_DIR:-$root/.cache/ollama}"

stamp() {
	(
		cd "$tools"
		find . -type f \( -name '*.go' -o -name '*.h' -o -name 'Modelfile' \) | LC_ALL=C sort |
			xargs cat go.mod go.sum "$root/hack/ollama-build.sh"
	) | sha256sum | cut -d' ' -f1
}

up_to_date() {
	[[ -f "$out/.stamp" && "$(cat "$out/.stamp")" == "$(stamp)" ]] || return 1
	[[ -x "$out/bin/ollama" && -x "$out/bin/registry" && -d "$out/models/manifests" ]]
}

# One build at a time: a second run (two checkouts' tests, make test twice)
# waits here, then finds the first one's result.
mkdir -p "$out"
exec 9>"$out/.lock"
flock 9

if up_to_date; then
	exit 0
fi

if ! command -v go >/dev/null; then
	echo "ollama-build: go is not on PATH; install Go 1.26 to build the test engine" >&2
	exit 1
fi
# The module zip of ollama leaves out llama.cpp's vendor/ folder; Debian ships
# the two header-only libraries it needs. miniaudio comes from include/ here.
missing=()
[[ -f /usr/include/nlohmann/json.hpp ]] || missing+=(nlohmann-json3-dev)
[[ -f /usr/include/stb/stb_image.h ]] || missing+=(libstb-dev)
command -v g++ >/dev/null || missing+=(g++)
if ((${#missing[@]})); then
	echo "ollama-build: missing build dependencies; install them with: apt-get install -y ${missing[*]}" >&2
	exit 1
fi

echo "ollama-build: building ollama, registry and the tiny model into $out (10 to 30 minutes the first time, by how busy the cores are)" >&2
mkdir -p "$out/bin"
rm -f "$out/.stamp"
start=$SECONDS
(
	cd "$tools"
	# -I for the miniaudio stand-in (Debian puts stb/ and nlohmann/ on the
	# default include path). Fixed flags, so that a caller's CGO_CFLAGS (the
	# Makefile exports one for go-nvml) never invalidates the long cgo build.
	export CGO_ENABLED=1 CGO_CFLAGS="-O2 -g" CGO_CXXFLAGS="-O2 -g"
	export CGO_CPPFLAGS="-I$tools/include"
	# The static link warns that glibc's NSS and dlopen need the build's glibc
	# at run time: name and user lookups, and GPU backend libraries. The tests
	# give literal addresses and run on the CPU built in, so the warnings are
	# shown only when the build fails.
	if ! log=$(go build -trimpath -ldflags '-s -w -linkmode external -extldflags -static' \
		-o "$out/bin/ollama" github.com/ollama/ollama 2>&1); then
		echo "$log" >&2
		exit 1
	fi
	echo "ollama-build: ollama built after $((SECONDS - start))s" >&2
	CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o "$out/bin/registry" \
		github.com/distribution/distribution/v3/cmd/registry
	CGO_ENABLED=0 go build -trimpath -o "$out/bin/tinymodel" ./tinymodel
)
rm -rf "$out/models" "$out/model"
"$out/bin/tinymodel" -ollama "$out/bin/ollama" -dir "$out/model" -models "$out/models"
stamp >"$out/.stamp"
echo "ollama-build: done in $((SECONDS - start))s" >&2
