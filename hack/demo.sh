#!/usr/bin/env bash
# The README's first command (make demo), start to finish on the local Docker
# engine with a real inference engine: Ollama with a tiny generated model
# (hack/ollama-build.sh; cached after the first build). It scaffolds a project
# with aideploy init --server ollama, builds the gateway image (as make image
# does) and two FROM scratch Ollama images (v2's model has a system prompt, so
# its answers count more prompt tokens), runs the gateway as compose.yaml does
# (a container on the project network), deploys v1, sends traffic, rolls out v2
# under that traffic, shows status, rolls back, and cleans up.
# Needs: go, docker (engine reachable), curl. Ports: 18080 (gateway), 18081 (admin), on loopback.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
port=${DEMO_PORT:-18080}
admin_port=${DEMO_ADMIN_PORT:-18081}
listen=127.0.0.1:$port
admin=127.0.0.1:$admin_port
name=demo
net=${name}_default # compose's project network
gateway=$name-gateway
model=aideploy-tiny
load_pid=
# go-nvml's cgo wrappers call NVML functions CUDA 13 deprecated; as in the
# Makefile, keep their compiler warnings out of a direct run of this script.
export CGO_CFLAGS="${CGO_CFLAGS:--O2 -g -Wno-deprecated-declarations}"
start=$SECONDS

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
	docker rm -f "$gateway" >/dev/null 2>&1
	docker network rm "$net" >/dev/null 2>&1
	docker rmi -f aideploy-demo-ollama:v1 aideploy-demo-ollama:v2 aideploy-demo-gateway:latest >/dev/null 2>&1
	rm -rf "$work"
}
trap cleanup EXIT

# quiet_build builds an image; the engine's own notices (a missing buildx,
# say) only matter if the build fails.
quiet_build() {
	local out
	if ! out=$(docker build -q "$@" 2>&1 >/dev/null); then
		printf '%s\n' "$out" >&2
		exit 1
	fi
}

say "building aideploy and its image (what make image does: a static binary FROM scratch)"
(cd "$root" && go build -o "$work/aideploy" ./cmd/aideploy)
mkdir -p "$work/gw/bin"
(cd "$root" && CGO_ENABLED=0 go build -trimpath -o "$work/gw/bin/aideploy-static" ./cmd/aideploy)
cp "$root/Dockerfile" "$work/gw/"
quiet_build -t aideploy-demo-gateway:latest "$work/gw"
echo "built aideploy-demo-gateway (FROM scratch)"

say "building Ollama and the tiny model (cached after the first time; 10 to 30 minutes cold)"
"$root/hack/ollama-build.sh"
cache="${OLLAMA_CACHE_DIR:-$root/.cache/ollama}"
for v in v1 v2; do
	ctx="$work/ollama-$v"
	mkdir -p "$ctx"
	cp "$cache/bin/ollama" "$ctx/ollama"
	cp -r "$cache/models" "$ctx/models"
	if [ "$v" = v2 ]; then
		# A system prompt layer, as a Modelfile's SYSTEM gives: v2 answers count more prompt tokens.
		sys="You are version two of the tiny model, rolled out by aideploy under traffic."
		digest=$(printf '%s' "$sys" | sha256sum | cut -d' ' -f1)
		printf '%s' "$sys" >"$ctx/models/blobs/sha256-$digest"
		manifest="$ctx/models/manifests/registry.ollama.ai/library/$model/latest"
		sed -i "s|]}\$|,{\"mediaType\":\"application/vnd.ollama.image.system\",\"digest\":\"sha256:$digest\",\"size\":${#sys}}]}|" "$manifest"
	fi
	printf 'FROM scratch\nCOPY ollama /bin/ollama\nCOPY models /models\nENV OLLAMA_NOPRUNE=1 OLLAMA_NO_CLOUD=1\nEXPOSE 11434\nLABEL aideploy.demo=true\nENTRYPOINT ["/bin/ollama"]\nCMD ["serve"]\n' >"$ctx/Dockerfile"
	quiet_build -t "aideploy-demo-ollama:$v" "$ctx"
	echo "built aideploy-demo-ollama:$v (FROM scratch, Ollama with $model)"
done

say "aideploy init --server ollama: scaffold the project (aideploy.yaml + rendered files)"
"$work/aideploy" init "$work/$name" --name "$name" --server ollama --model "$model" \
	--image aideploy-demo-ollama:v1 --model-volume none --model-path /models --context-length 512 \
	--gpus 0 --model-params 1M --dtype fp32 --replicas 2 --autoscaling=false --memory 1Gi
mv "$work/$name/"* "$work/"
cd "$work"
grep -n 'replicas: 0\|--upstream' compose.yaml | sed 's/^/compose.yaml:/'

AIDEPLOY_ADMIN_TOKEN=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
export AIDEPLOY_ADMIN_TOKEN AIDEPLOY_GATEWAY_ADMIN="http://$admin"

say "starting the gateway as compose.yaml's gateway service does (on $net; clients $listen, admin $admin)"
# `docker compose up -d` runs the same; this demo needs no compose plugin and
# no Redis image (the gateway caches in memory without one).
chmod 755 "$work" && chmod 644 aideploy.yaml # the image runs as user 65532
docker network create --label "com.docker.compose.project=$name" --label com.docker.compose.network=default "$net" >/dev/null
docker run -d --name "$gateway" --network "$net" -p "$listen:8080" -p "$admin:8081" \
	-e AIDEPLOY_ADMIN_TOKEN -v "$work/aideploy.yaml:/etc/aideploy/aideploy.yaml:ro" \
	aideploy-demo-gateway:latest gateway serve --config /etc/aideploy/aideploy.yaml \
	--listen 0.0.0.0:8080 --admin-listen 0.0.0.0:8081 --upstream "http://$name:11434" >/dev/null
for _ in $(seq 100); do curl -fsS -o /dev/null "http://$admin/admin/pools" -H "Authorization: Bearer $AIDEPLOY_ADMIN_TOKEN" && break; sleep 0.1; done

# ask sends one chat completion through the gateway and prints: time, status,
# prompt tokens. no-cache: every answer comes from a replica, so its version shows.
ask() {
	local stream=$1 i=$2
	curl -s -m 60 -w '\n%{http_code}\n' -H 'Cache-Control: no-cache' "http://$listen/v1/chat/completions" \
		-d "{\"model\":\"$model\",\"messages\":[{\"role\":\"user\",\"content\":\"hello there\"}],\"max_tokens\":4,\"seed\":$i,\"stream\":$stream,\"stream_options\":{\"include_usage\":true}}" |
		awk -v t="$(date +%s.%N)" '/prompt_tokens/{match($0, /"prompt_tokens":[0-9]+/); p=substr($0, RSTART+16, RLENGTH-16)} /^[0-9][0-9][0-9]$/{code=$0} END{print t, code, p}'
}

say "first deploy: v1 (each replica a gateway target by its container name)"
./aideploy rollout --yes --scale-down-delay 2s
curl -fsS "http://$admin/admin/pools" -H "Authorization: Bearer $AIDEPLOY_ADMIN_TOKEN" | grep -o '"url":"[^"]*"' | sed 's/^/pool target /'
say "a real completion through the gateway"
curl -fsS "http://$listen/v1/chat/completions" -d "{\"model\":\"$model\",\"messages\":[{\"role\":\"user\",\"content\":\"hello there\"}],\"max_tokens\":12}"
echo
v1_tokens=$(ask false 0 | awk '{print $3}')

say "sending traffic: streaming and non-streaming chat completions"
(
	i=1
	while :; do
		stream=$([ $((i % 2)) -eq 0 ] && echo true || echo false)
		ask "$stream" "$i" &
		i=$((i + 1))
		sleep 0.2 # about 5 requests a second: two Ollama replicas share this host's cores with the replicas starting beside them
	done
) >traffic.log &
load_pid=$!
sleep 2

say "rollout to v2 under traffic (health-gated, warmed up, atomic switch, watched)"
./aideploy rollout --image aideploy-demo-ollama:v2 --yes --watch-window 5s --scale-down-delay 2s
v2_tokens=$(ask false 0 | awk '{print $3}')

say "status"
./aideploy status

say "rollback to v1 (its containers were kept)"
./aideploy rollback --yes
./aideploy status | sed -n 1p # reads all of it: head would end the pipe early (SIGPIPE under pipefail)

sleep 1
kill "$load_pid" 2>/dev/null && wait "$load_pid" 2>/dev/null || true
load_pid=
sleep 1

say "history"
./aideploy history

total=$(wc -l <traffic.log)
failed=$(awk '$2 != 200' traffic.log | wc -l)
say "traffic: $total requests, $failed failed; answers by version (v1 counts $v1_tokens prompt tokens, v2 $v2_tokens):"
awk -v a="$v1_tokens" -v b="$v2_tokens" '{print ($3 == a ? "v1" : ($3 == b ? "v2" : "other(" $3 ")"))}' traffic.log | sort | uniq -c
if [ "$failed" -gt 0 ]; then
	echo "first failed requests (time, status, prompt tokens):"
	awk '$2 != 200' traffic.log | head -5
fi
echo
echo "What to look at: every request answered 200 while v2 replaced v1 and v1 came back;"
echo "the rollout printed time to first token of the warm-up and the step timings."
echo "demo wall time: $((SECONDS - start))s"
[ "$failed" -eq 0 ] && [ "$v1_tokens" != "$v2_tokens" ]
