#!/bin/bash
# Gateway -> model hop: over a veth pair into another network namespace (a
# Deployment in front, pod to pod on one node) vs a Unix socket (native sidecar)
# vs TCP loopback (sidecar over TCP). Runs in namespaces it creates itself.
# Needs root (ip netns). Usage: sudo bench/k8shop/run.sh   (N=3000 ROUNDS=5 for more samples)
set -eu
cd "$(dirname "$0")/../.."
T=$(mktemp -d)
go build -o "$T/aideploy" ./cmd/aideploy
go build -o "$T/fakemodel" ./cmd/fakemodel
go build -o "$T/hopbench" ./bench/k8shop
cd "$T"
A=aidhop-a; B=aidhop-b
cleanup() { kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; ip netns del $A 2>/dev/null || true; ip netns del $B 2>/dev/null || true; rm -rf "$T"; }
trap cleanup EXIT
ip netns add $A; ip netns add $B
ip link add aidhop-va type veth peer name aidhop-vb
ip link set aidhop-va netns $A; ip link set aidhop-vb netns $B
ip -n $A addr add 10.250.0.1/24 dev aidhop-va; ip -n $B addr add 10.250.0.2/24 dev aidhop-vb
for n in $A $B; do ip -n $n link set lo up; done
ip -n $A link set aidhop-va up; ip -n $B link set aidhop-vb up
printf 'name: chat\nimage: x:1\ngateway:\n  cache: {enabled: false}\n' > gw.yaml
export AIDEPLOY_ADMIN_TOKEN=benchtoken0123456789abcdef0123456789
ip netns exec $B ./fakemodel --listen 10.250.0.2:8000 >/dev/null 2>&1 &
ip netns exec $A ./fakemodel --listen unix://$T/model.sock >/dev/null 2>&1 &
ip netns exec $A ./fakemodel --listen 127.0.0.1:8001 >/dev/null 2>&1 &
ip netns exec $A ./aideploy gateway serve --config gw.yaml --listen 127.0.0.1:9101 --admin-listen 127.0.0.1:9201 --upstream http://10.250.0.2:8000 >/dev/null 2>&1 &
ip netns exec $A ./aideploy gateway serve --config gw.yaml --listen 127.0.0.1:9102 --admin-listen 127.0.0.1:9202 --upstream unix://$T/model.sock >/dev/null 2>&1 &
ip netns exec $A ./aideploy gateway serve --config gw.yaml --listen 127.0.0.1:9103 --admin-listen 127.0.0.1:9203 --upstream http://127.0.0.1:8001 >/dev/null 2>&1 &
for p in 9201 9202 9203; do
  for i in $(seq 100); do if ip netns exec $A bash -c "exec 3<>/dev/tcp/127.0.0.1/$p" 2>/dev/null; then break; fi; sleep 0.1; done
done
ip netns exec $A ./hopbench -n "${N:-2000}" -rounds "${ROUNDS:-3}" http://127.0.0.1:9101 http://127.0.0.1:9102 http://127.0.0.1:9103 \
  http://10.250.0.2:8000 http://127.0.0.1:8001
