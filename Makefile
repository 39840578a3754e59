# aideploy — build, test, benchmark and demo.
# Every target works on a fresh clone; services the tests need (Redis, Docker,
# a Kubernetes control plane) are started by the tests themselves.

GO        ?= go
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT    ?= $(shell git rev-parse HEAD 2>/dev/null)
DATE      ?= $(shell git log -1 --format=%cI 2>/dev/null)
PKG        = github.com/aideploy/aideploy/internal/buildinfo
LDFLAGS    = -s -w -X $(PKG).Version=$(VERSION) -X $(PKG).Commit=$(COMMIT) -X $(PKG).Date=$(DATE)
# A count, not a duration: Go 1.26's fuzz coordinator can fail a target with
# "context deadline exceeded" when a -fuzztime duration ends mid-input
# (golang/go#75804, fixed in 1.27); a count has no deadline to race.
FUZZTIME  ?= 200000x
# go-nvml's header marks the NVML calls that CUDA 13 deprecated; cgo's wrappers
# for them would print a page of warnings on every cold build.
export CGO_CFLAGS ?= -O2 -g -Wno-deprecated-declarations

.PHONY: all build image test unit fuzz vet lint bench demo k8s-tools ollama-tools cluster-up cluster-down clean

all: build

## build: the aideploy binary in bin/
build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/aideploy ./cmd/aideploy

# The integration tests that put a model under load and judge what its
# clients saw (no failed request at 100 req/s and more) run after the rest,
# one package at a time, as benchmarks do: beside the other packages' control
# planes, containers and compilers, two shared cores measure those, not the
# product. Every test that takes internal/testutil/loadslot is listed here
# (its test checks that).
LOADTESTS  = ^(TestIntegrationDockerCanary|TestIntegrationDockerShadow|TestIntegrationDockerFallbackToThePreviousVersion|TestIntegrationDockerOllamaRolloutInComposeLayout|TestIntegrationDockerRolloutUnderLoadAndRollback|TestIntegrationDockerRolloutFailuresRollBack|TestIntegrationK8sGatewayCanary|TestIntegrationK8sGatewayRollout)$$

## test: vet, unit and integration tests (Redis, Docker, Kubernetes), then the load tests alone, the gateway under the race detector, then short fuzzing
test: vet k8s-tools
	$(GO) test -count=1 -timeout 40m -skip '$(LOADTESTS)' ./...
	$(GO) test -count=1 -timeout 30m -p 1 -run '$(LOADTESTS)' ./internal/compose ./internal/k8s
	$(GO) test -race -count=1 -timeout 20m ./internal/gateway/...
	$(MAKE) fuzz

## image: the aideploy image (FROM scratch) that compose.yaml and the prewarm CronJobs run
image:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/aideploy-static ./cmd/aideploy
	docker build -t aideploy:$(VERSION) .

## unit: tests that need no service (integration tests are skipped under -short)
unit:
	$(GO) test -short ./...

## fuzz: run each fuzz target briefly
fuzz:
	@set -e; $(GO) list -f '{{.Dir}} {{.ImportPath}}' ./... | while read dir pkg; do \
		for f in $$(grep -ho '^func Fuzz[A-Za-z0-9_]*' $$dir/*_test.go 2>/dev/null | sed 's/func //'); do \
			echo "fuzz $$pkg $$f ($(FUZZTIME))"; \
			$(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg; \
		done; \
	done

vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }

## lint: vet plus gofmt (golangci-lint if installed)
lint: vet
	@if command -v golangci-lint >/dev/null; then golangci-lint run; fi

## bench: gateway and rollout figures side by side with nginx
bench: build
	$(GO) run ./bench/gateway
	$(GO) run ./bench/peak
	$(GO) test ./internal/compose -run '^$$' -bench 'SwitchUnderLoad|CanaryAbort' -benchtime 1x

## demo: scaffold, build, deploy, roll out and serve through the gateway on the local Docker engine
demo:
	./hack/demo.sh

## k8s-tools: build the Kubernetes control plane for the tests once (cached in .cache/k8s)
k8s-tools:
	./hack/k8s-build.sh

## ollama-tools: build Ollama, a registry and the tiny test model once (cached in .cache/ollama)
ollama-tools:
	./hack/ollama-build.sh

# The real-engine (Ollama) and registry pull tests run what ollama-tools builds.
test: ollama-tools

cluster-up:
	./hack/cluster.sh up

cluster-down:
	./hack/cluster.sh down

clean:
	rm -rf bin dist out
