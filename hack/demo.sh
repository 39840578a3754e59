#!/usr/bin/env bash
# The README's first command (make demo), start to finish on the local Docker
# engine with embedded defaults: scaffolds a project with aideploy init, renders
# its files, builds the fake model into two FROM scratch images (v1, v2), starts
# the gateway, deploys v1, sends traffic, rolls out v2 under that traffic, shows
# status, rolls back, and cleans up.
# Needs: go, docker (engine reachable), curl. Ports: 18080 (gateway), 18081 (admin).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
listen=127.0.0.1:${DEMO_PORT:-18080}
admin=127.0.0.1:${DEMO_ADMIN_PORT:-18081}
gw_pid= load_pid=
# go-nvml's cgo wrappers call NVML functions CUDA 13 deprecated; as in the
# Makefile, keep their compiler warnings out of a direct run of this script.
export CGO_CFLAGS="${CGO_CFLAGS:--O2 -g -Wno-deprecated-declarations}"

# Bold headings on a terminal only (and never with NO_COLOR), as aideploy does.
if [[ -t 1 && -z "${NO_COLOR:-}" ]]; then
	say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
else
	say() { printf '\n== %s\n' "$*"; }
fi

cleanup() {
	set +e
	[ -n "$load_pid" ] && kill "$load_pid" 2>/dev/null && wait "$load_pid" 2>/dev/null
	if [ -x "$work/aideploy" ]; then
		(cd "$work" && ./aideploy down --yes >/dev/null 2>&1)
	fi
	[ -n "$gw_pid" ] && kill "$gw_pid" 2>/dev/null && wait "$gw_pid" 2>/dev/null
	docker rmi -f aideploy-demo-model:v1 aideploy-demo-model:v2 >/dev/null 2>&1
	rm -rf "$work"
}
trap cleanup EXIT

say "building aideploy and the fake model"
(cd "$root" && go build -o "$work/aideploy" ./cmd/aideploy)
mkdir -p "$work/image"
(cd "$root" && CGO_ENABLED=0 go build -o "$work/image/fakemodel" ./cmd/fakemodel)
for v in v1 v2; do
	printf 'FROM scratch\nCOPY fakemodel /fakemodel\nENV FAKEMODEL_VERSION=%s FAKEMODEL_STARTUP_DELAY=3s FAKEMODEL_TOKEN_DELAY=20ms\nEXPOSE 8000\nLABEL aideploy.demo=true\nENTRYPOINT ["/fakemodel"]\n' "$v" >"$work/image/Dockerfile"
	# The engine's own notices (a missing buildx, say) only matter if the build fails.
	if ! out=$(docker build -q -t "aideploy-demo-model:$v" "$work/image" 2>&1 >/dev/null); then
		printf '%s\n' "$out" >&2
		exit 1
	fi
	echo "built aideploy-demo-model:$v (FROM scratch)"
done

say "aideploy init: scaffold the project (aideploy.yaml + rendered files)"
"$work/aideploy" init "$work/demo" --name demo --image aideploy-demo-model:v1 --gpus 0 \
	--model-params 350M --dtype fp32 --replicas 2 --autoscaling=false --memory 1Gi
mv "$work/demo/"* "$work/demo/".dockerignore "$work/"

say "aideploy render all: rendering again gives the same bytes"
(cd "$work" && ./aideploy render all --output-dir r1 >/dev/null && ./aideploy render all --output-dir r2 >/dev/null && diff -r r1 r2 && echo "identical: $(find r1 -type f | wc -l) files" && rm -rf r1 r2)
cd "$work"
AIDEPLOY_ADMIN_TOKEN=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
export AIDEPLOY_ADMIN_TOKEN AIDEPLOY_GATEWAY_ADMIN="http://$admin"

say "starting the gateway on $listen (admin API on $admin)"
# The placeholder upstream is replaced by the first rollout's atomic switch.
./aideploy gateway serve --listen "$listen" --admin-listen "$admin" --upstream http://127.0.0.1:9 >gateway.log 2>&1 &
gw_pid=$!
for _ in $(seq 50); do curl -fsS -o /dev/null "http://$admin/admin/pools" -H "Authorization: Bearer $AIDEPLOY_ADMIN_TOKEN" && break; sleep 0.1; done

say "first deploy: v1"
./aideploy rollout --yes --scale-down-delay 2s

say "sending traffic: streaming and non-streaming chat completions"
(
	i=0
	while :; do
		stream=$([ $((i % 2)) -eq 0 ] && echo true || echo false)
		curl -s -o /dev/null -D - -m 30 "http://$listen/v1/chat/completions" \
			-d "{\"messages\":[{\"role\":\"user\",\"content\":\"hi $i\"}],\"max_tokens\":4,\"stream\":$stream}" |
			awk -v t="$(date +%s.%N)" 'NR==1{code=$2} tolower($1)=="x-model-version:"{v=$2} END{gsub("\r","",v); print t, code, v}' &
		i=$((i + 1))
		sleep 0.05
	done
) >traffic.log &
load_pid=$!
sleep 2

say "rollout to v2 under traffic (health-gated, warmed up, atomic switch, watched)"
./aideploy rollout --image aideploy-demo-model:v2 --yes --watch-window 5s --scale-down-delay 2s

say "status"
./aideploy status

say "rollback to v1 (its containers were kept)"
./aideploy rollback --yes
./aideploy status | sed -n 1p  # reads all of it: head would end the pipe early (SIGPIPE under pipefail)

sleep 1
kill "$load_pid" 2>/dev/null && wait "$load_pid" 2>/dev/null || true
load_pid=
sleep 1

say "history"
./aideploy history

total=$(wc -l <traffic.log)
failed=$(awk '$2 != 200' traffic.log | wc -l)
say "traffic: $total requests, $failed failed; answers by version:"
awk '{print $3}' traffic.log | sort | uniq -c
echo
echo "What to look at: every request answered 200 while v2 replaced v1 and v1 came back;"
echo "the rollout printed time to first token of the warm-up and the step timings."
[ "$failed" -eq 0 ]
