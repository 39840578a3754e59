#!/usr/bin/env bash
# The README's first command (make demo): scaffold a project, render every file
# and validate it, on this machine, with embedded defaults. It grows with the
# gateway and rollout commands: see the steps below.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$PWD/bin/aideploy
work=$(mktemp -d "${TMPDIR:-/tmp}/aideploy-demo.XXXXXX")
cleanup() { rm -rf "$work"; }
trap cleanup EXIT

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

step "aideploy init: scaffold a project for an 8B model on one GPU"
"$bin" init "$work/chat" --name chat --image registry.example.com/chat:1.0.0 --gpus 1 --model-params 8B

step "aideploy validate: the configuration every command reads"
(cd "$work/chat" && "$bin" validate)

step "aideploy render all: the files a team deploys, rendered twice to show they are identical"
(cd "$work/chat" && "$bin" render all -o out1 >/dev/null && "$bin" render all -o out2 >/dev/null && diff -r out1 out2 && find out1 -type f | sort)

echo
echo "Look at: $work/chat/aideploy.yaml (the one source of truth) and the rendered files above."
