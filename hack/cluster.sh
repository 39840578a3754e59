#!/usr/bin/env bash
# Runs a real Kubernetes control plane on loopback for the integration tests:
# etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok, which
# simulates the nodes (some with nvidia.com/gpu) and the pod lifecycles.
#
#   hack/cluster.sh up       build if needed, start, create nodes, wait until Ready
#   hack/cluster.sh down     stop everything and remove the state folder
#   hack/cluster.sh env      print `export KUBECONFIG=...`
#   hack/cluster.sh status   print the processes and the nodes
#
# Environment:
#   K8S_STATE_DIR      state folder (certificates, kubeconfig, logs); default .cache/k8s/run
#   K8S_BIN_DIR        binaries; default .cache/k8s/bin
#   K8S_GPU_NODES      GPUs of each GPU node, comma-separated; default 4,4,2
#   K8S_CPU_NODES      number of CPU-only nodes; default 1
#   K8S_GPU_PRODUCT    nvidia.com/gpu.product label; default NVIDIA-H100-80GB-HBM3
#   K8S_GPU_MEMORY     nvidia.com/gpu.memory label (MiB); default 81559
#   K8S_HPA_SYNC       HPA sync period; default 5s
#   K8S_HPA_DOWNSCALE  HPA downscale stabilization window; default 15s
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
state="${K8S_STATE_DIR:-$root/.cache/k8s/run}"
bin="${K8S_BIN_DIR:-$root/.cache/k8s/bin}"
export K8S_BIN_DIR="$bin"
gpu_nodes="${K8S_GPU_NODES-4,4,2}"
cpu_nodes="${K8S_CPU_NODES:-1}"
gpu_product="${K8S_GPU_PRODUCT:-NVIDIA-H100-80GB-HBM3}"
gpu_memory="${K8S_GPU_MEMORY:-81559}"
hpa_sync="${K8S_HPA_SYNC:-5s}"
hpa_downscale="${K8S_HPA_DOWNSCALE:-15s}"
components=(kwok kube-scheduler kube-controller-manager kube-apiserver etcd)

log() { echo "cluster: $*" >&2; }
die() {
	log "$*"
	exit 1
}

# free_port prints a loopback TCP port nobody listens on and that this run has
# not handed out yet.
used_ports=" "
free_port() {
	local port
	while :; do
		port=$((20000 + RANDOM % 12768)) # below Linux's ephemeral range (32768-60999)
		[[ "$used_ports" == *" $port "* ]] && continue
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
			used_ports+="$port "
			echo "$port"
			return
		fi
	done
}

kubectl() { "$bin/kubectl" --kubeconfig "$state/admin.kubeconfig" "$@"; }

# wait_for runs its arguments until they succeed, for at most $1 seconds.
wait_for() {
	local deadline=$((SECONDS + $1)) what="$2"
	shift 2
	until "$@" >/dev/null 2>&1; do
		if ((SECONDS >= deadline)); then
			log "timed out waiting for $what; logs are in $state/logs"
			return 1
		fi
		sleep 0.2
	done
}

# The certificates come from hack/k8s-tools/certs, so nothing beyond Go is needed.
gen_certs() {
	"$bin/certs" "$state/pki"
}

write_kubeconfig() {
	cat >"$state/admin.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: aideploy-test
  cluster:
    server: https://127.0.0.1:$1
    certificate-authority: $state/pki/ca.crt
users:
- name: admin
  user:
    client-certificate: $state/pki/admin.crt
    client-key: $state/pki/admin.key
contexts:
- name: aideploy-test
  context:
    cluster: aideploy-test
    user: admin
    namespace: default
current-context: aideploy-test
EOF
}

# start NAME ARGS... runs bin/NAME in its own session, logging to logs/NAME.log.
start() {
	local name="$1"
	shift
	setsid "$bin/$name" "$@" >"$state/logs/$name.log" 2>&1 </dev/null &
	echo $! >"$state/pids/$name"
}

alive() { [[ -f "$state/pids/$1" ]] && kill -0 "$(cat "$state/pids/$1")" 2>/dev/null; }

# check_alive fails, naming the log, when a component died.
check_alive() {
	local c
	for c in "$@"; do
		alive "$c" || {
			log "$c exited; last lines of $state/logs/$c.log:"
			tail -n 20 "$state/logs/$c.log" >&2 || true
			return 1
		}
	done
}

apiserver_ready() {
	curl -fsS --max-time 2 --cacert "$state/pki/ca.crt" --cert "$state/pki/admin.crt" --key "$state/pki/admin.key" \
		"https://127.0.0.1:$1/readyz" >/dev/null
}

node_yaml() {
	local name="$1" gpus="$2"
	cat <<EOF
---
apiVersion: v1
kind: Node
metadata:
  name: $name
  annotations:
    kwok.x-k8s.io/node: fake
    node.alpha.kubernetes.io/ttl: "0"
  labels:
    type: kwok
    kubernetes.io/arch: amd64
    kubernetes.io/hostname: $name
    kubernetes.io/os: linux
    node-role.kubernetes.io/worker: ""
EOF
	if ((gpus > 0)); then
		cat <<EOF
    nvidia.com/gpu.present: "true"
    nvidia.com/gpu.count: "$gpus"
    nvidia.com/gpu.product: $gpu_product
    nvidia.com/gpu.memory: "$gpu_memory"
spec:
  taints:
  - key: nvidia.com/gpu
    effect: NoSchedule
EOF
	fi
	cat <<EOF
status:
  allocatable: &resources
    cpu: "32"
    memory: 256Gi
    pods: "110"
    ephemeral-storage: 1Ti
EOF
	if ((gpus > 0)); then
		echo "    nvidia.com/gpu: \"$gpus\""
	fi
	cat <<EOF
  capacity: *resources
  nodeInfo:
    architecture: amd64
    kubeletVersion: fake
    operatingSystem: linux
EOF
}

create_nodes() {
	local i=0 gpus
	{
		if [[ -n "$gpu_nodes" ]]; then
			IFS=, read -ra counts <<<"$gpu_nodes"
			for gpus in "${counts[@]}"; do
				node_yaml "gpu-node-$i" "$gpus"
				i=$((i + 1))
			done
		fi
		for ((i = 0; i < cpu_nodes; i++)); do
			node_yaml "cpu-node-$i" 0
		done
	} >"$state/nodes.yaml"
	kubectl apply -f "$state/nodes.yaml" >/dev/null
}

# nodes_ready succeeds when every node is Ready and none is still tainted not-ready.
nodes_ready() {
	local out
	out="$(kubectl get nodes -o jsonpath='{range .items[*]}{.metadata.name}{" "}{.status.conditions[?(@.type=="Ready")].status}{" "}{.spec.taints[*].key}{"\n"}{end}')"
	[[ -n "$out" ]] || return 1
	! grep -qv ' True' <<<"$out" && ! grep -q 'node.kubernetes.io/' <<<"$out"
}

# cmd_up retries with fresh ports: another control plane starting at the same
# moment (go test runs packages in parallel) can take a port between the check
# and the bind.
cmd_up() {
	local attempt
	for attempt in 1 2 3; do
		# A process of its own, so that errexit stops a failed attempt.
		if "$root/hack/cluster.sh" __try_up; then
			return 0
		fi
		log "start attempt $attempt failed; stopping what started and trying again with other ports"
		cmd_down >/dev/null 2>&1 || true
	done
	return 1
}

try_up() {
	if [[ -d "$state/pids" ]]; then
		cmd_down
	fi
	"$root/hack/k8s-build.sh"
	local begin=$SECONDS
	mkdir -p "$state/logs" "$state/pids" "$state/etcd"
	gen_certs
	local etcd_port etcd_peer api_port kcm_port sched_port kwok_port
	etcd_port="$(free_port)"
	etcd_peer="$(free_port)"
	api_port="$(free_port)"
	kcm_port="$(free_port)"
	sched_port="$(free_port)"
	kwok_port="$(free_port)"
	write_kubeconfig "$api_port"
	local kubeconfig="$state/admin.kubeconfig" pki="$state/pki"

	start etcd --name=aideploy-test --data-dir="$state/etcd" \
		--listen-client-urls="http://127.0.0.1:$etcd_port" --advertise-client-urls="http://127.0.0.1:$etcd_port" \
		--listen-peer-urls="http://127.0.0.1:$etcd_peer" --initial-advertise-peer-urls="http://127.0.0.1:$etcd_peer" \
		--initial-cluster="aideploy-test=http://127.0.0.1:$etcd_peer" \
		--unsafe-no-fsync --log-level=warn

	# A loopback advertise address is refused unless the endpoint reconciler is off.
	start kube-apiserver --etcd-servers="http://127.0.0.1:$etcd_port" \
		--bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$api_port" \
		--endpoint-reconciler-type=none --cert-dir="$pki" \
		--tls-cert-file="$pki/apiserver.crt" --tls-private-key-file="$pki/apiserver.key" \
		--client-ca-file="$pki/ca.crt" --authorization-mode=RBAC \
		--service-account-issuer=https://kubernetes.default.svc.cluster.local \
		--service-account-key-file="$pki/sa.pub" --service-account-signing-key-file="$pki/sa.key" \
		--service-cluster-ip-range=10.0.0.0/24 --allow-privileged=true \
		--requestheader-client-ca-file="$pki/front-proxy-ca.crt" \
		--requestheader-allowed-names=front-proxy-client \
		--requestheader-username-headers=X-Remote-User --requestheader-group-headers=X-Remote-Group \
		--requestheader-extra-headers-prefix=X-Remote-Extra- \
		--proxy-client-cert-file="$pki/front-proxy-client.crt" --proxy-client-key-file="$pki/front-proxy-client.key" \
		--profiling=false

	wait_for 60 kube-apiserver apiserver_ready "$api_port" || {
		check_alive etcd kube-apiserver || true
		return 1
	}

	start kube-controller-manager --kubeconfig="$kubeconfig" \
		--authentication-kubeconfig="$kubeconfig" --authorization-kubeconfig="$kubeconfig" \
		--bind-address=127.0.0.1 --secure-port="$kcm_port" --cert-dir="$state/kcm" \
		--controllers='*' --leader-elect=false \
		--service-account-private-key-file="$pki/sa.key" --root-ca-file="$pki/ca.crt" \
		--cluster-signing-cert-file="$pki/ca.crt" --cluster-signing-key-file="$pki/ca.key" \
		--node-monitor-grace-period=2m \
		--horizontal-pod-autoscaler-sync-period="$hpa_sync" \
		--horizontal-pod-autoscaler-downscale-stabilization="$hpa_downscale" --profiling=false

	start kube-scheduler --kubeconfig="$kubeconfig" \
		--authentication-kubeconfig="$kubeconfig" --authorization-kubeconfig="$kubeconfig" \
		--bind-address=127.0.0.1 --secure-port="$sched_port" --cert-dir="$state/scheduler" \
		--leader-elect=false --profiling=false

	local stages=() f
	for f in "$root"/hack/kwok/*.yaml; do
		stages+=("--config=$f")
	done
	start kwok --kubeconfig="$kubeconfig" \
		--manage-all-nodes=false --manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake \
		--server-address="127.0.0.1:$kwok_port" --node-ip=10.1.0.1 --cidr=10.2.0.0/16 \
		"${stages[@]}"

	create_nodes
	wait_for 60 "nodes to be Ready" nodes_ready || {
		check_alive "${components[@]}" || true
		return 1
	}
	check_alive "${components[@]}"
	log "up in $((SECONDS - begin))s; export KUBECONFIG=$kubeconfig"
}

cmd_down() {
	local c pid
	for c in "${components[@]}"; do
		[[ -f "$state/pids/$c" ]] || continue
		pid="$(cat "$state/pids/$c")"
		kill -TERM "$pid" 2>/dev/null || true
	done
	for c in "${components[@]}"; do
		[[ -f "$state/pids/$c" ]] || continue
		pid="$(cat "$state/pids/$c")"
		for _ in $(seq 50); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$pid" 2>/dev/null || true
	done
	# Remove only what looks like a state folder, whatever K8S_STATE_DIR says.
	if [[ -d "$state/pki" || -d "$state/pids" ]]; then
		rm -rf "$state"
	fi
}

cmd_status() {
	local c
	for c in "${components[@]}"; do
		if alive "$c"; then
			echo "$c: running (pid $(cat "$state/pids/$c"))"
		else
			echo "$c: stopped"
		fi
	done
	if [[ -f "$state/admin.kubeconfig" ]] && alive kube-apiserver; then
		kubectl get nodes -o wide
	fi
}

case "${1:-}" in
up) cmd_up ;;
__try_up) try_up ;;
down) cmd_down ;;
env) echo "export KUBECONFIG=$state/admin.kubeconfig" ;;
status) cmd_status ;;
*)
	echo "usage: $0 up|down|env|status" >&2
	exit 2
	;;
esac
