# kmm: a Helm chart plus a Go post-renderer for out-of-tree kernel modules.
# `make help` lists the targets.

SHELL := /usr/bin/env bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := build

ROOT      := $(abspath .)
BIN       := $(ROOT)/bin
TOOLS_DIR := $(BIN)/tools
# ASSETS is the folder the test harness and the demo read binaries from (envtest's
# KUBEBUILDER_ASSETS convention): symlinks to the versioned binaries in $(TOOLS_DIR).
ASSETS    := $(BIN)/assets

GO        ?= go
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -X kmm.dev/kmm/pkg/version.Version=$(VERSION)

# Pinned tool versions. Changing one rebuilds only that tool.
K8S_VERSION  := v1.37.2
ETCD_VERSION := v3.7.0
KWOK_VERSION := v0.8.0
HELM3_VERSION := v3.22.0
HELM4_VERSION := v4.3.1
# distribution/distribution, the OCI registry of the release and real-node tests (tools/node/go.mod).
REGISTRY_VERSION := v3.1.2
# containerd of the real-node test's guest (tools/node/go.mod; 2.x: kubelet 1.37 needs its CRI).
CONTAINERD_VERSION := v2.4.2
# Rootless BuildKit (buildkitd, buildctl, rootlesskit) of the real-node test's builder image, and
# crane of its image check (tools/node/go.mod): the chart's build Job runs them on the real node.
BUILDKIT_VERSION := v0.34.2
ROOTLESSKIT_VERSION := v2.3.6
CRANE_VERSION := v0.22.1
CONTROLLER_GEN_VERSION := v0.20.1

K8S_MINOR := $(word 2,$(subst ., ,$(K8S_VERSION)))
K8S_LDFLAGS := -X k8s.io/component-base/version.gitVersion=$(K8S_VERSION) \
	-X k8s.io/component-base/version.gitMajor=$(word 2,$(subst ., ,$(subst v,v ,$(K8S_VERSION)))) \
	-X k8s.io/component-base/version.gitMinor=$(word 2,$(subst ., ,$(K8S_VERSION))) \
	-X k8s.io/component-base/version.gitTreeState=clean

KUBE_APISERVER := $(TOOLS_DIR)/kube-apiserver-$(K8S_VERSION)
KUBE_CM        := $(TOOLS_DIR)/kube-controller-manager-$(K8S_VERSION)
KUBE_SCHED     := $(TOOLS_DIR)/kube-scheduler-$(K8S_VERSION)
ETCD           := $(TOOLS_DIR)/etcd-$(ETCD_VERSION)
KWOK           := $(TOOLS_DIR)/kwok-$(KWOK_VERSION)
KWOK_STAGES    := $(TOOLS_DIR)/kwok-stages-$(KWOK_VERSION)
KUBECTL        := $(TOOLS_DIR)/kubectl-$(K8S_VERSION)
HELM3          := $(TOOLS_DIR)/helm-$(HELM3_VERSION)
HELM4          := $(TOOLS_DIR)/helm-$(HELM4_VERSION)
REGISTRY       := $(TOOLS_DIR)/registry-$(REGISTRY_VERSION)
KUBELET        := $(TOOLS_DIR)/kubelet-$(K8S_VERSION)
CONTAINERD     := $(TOOLS_DIR)/containerd-$(CONTAINERD_VERSION)
CONTAINERD_SHIM := $(TOOLS_DIR)/containerd-shim-runc-v2-$(CONTAINERD_VERSION)
DEVICE_PLUGIN  := $(TOOLS_DIR)/kmm-device-plugin-$(K8S_VERSION)
BUILDKITD      := $(TOOLS_DIR)/buildkitd-$(BUILDKIT_VERSION)
BUILDCTL       := $(TOOLS_DIR)/buildctl-$(BUILDKIT_VERSION)
ROOTLESSKIT    := $(TOOLS_DIR)/rootlesskit-$(ROOTLESSKIT_VERSION)
CRANE          := $(TOOLS_DIR)/crane-$(CRANE_VERSION)

comma := ,

EXAMPLE ?= gke
DEMO    ?= eks

.PHONY: help
help: ## List the targets.
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

##@ Build

.PHONY: build
build: $(BIN)/kmm-render $(BIN)/kmm-upgrade ## Build bin/kmm-render and bin/kmm-upgrade (the upgrade controller).

.PHONY: $(BIN)/kmm-render $(BIN)/kmm-upgrade
$(BIN)/kmm-render:
	@mkdir -p $(BIN)
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $@ ./cmd/kmm-render

$(BIN)/kmm-upgrade:
	@mkdir -p $(BIN)
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $@ ./cmd/kmm-upgrade

.PHONY: plugin
plugin: build ## Lay out the Helm 4 post-renderer plugin in bin/plugin/kmm-render.
	@rm -rf $(BIN)/plugin/kmm-render && mkdir -p $(BIN)/plugin/kmm-render/bin
	cp plugin/plugin.yaml $(BIN)/plugin/kmm-render/plugin.yaml
	cp $(BIN)/kmm-render $(BIN)/plugin/kmm-render/bin/kmm-render

# The kmm-render image (internal/image, hack/image): kmm-render and kmm-upgrade, static, on a base
# layer of /etc/passwd and /etc/group only, run as nonroot 65532; built without a container
# engine or a base image to pull, and reproducible (file and image times are the commit's time).
IMAGE_PLATFORMS ?= linux/amd64,linux/arm64
IMAGE_REPO      ?= ghcr.io/kmm-dev/kmm-render
IMAGE_TAG       ?= $(VERSION)
# IMAGE_PUSH=REGISTRY/REPO:TAG pushes it too (IMAGE_INSECURE=1 for a plain-HTTP local registry).
IMAGE_PUSH      ?=
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || echo 0)

.PHONY: image
image: ## Build the kmm-render image (linux/amd64, linux/arm64) into the OCI layout bin/image/kmm-render; IMAGE_PUSH=REF pushes it.
	@rm -rf $(BIN)/image/bin
	@for p in $(subst $(comma), ,$(IMAGE_PLATFORMS)); do \
		os=$${p%/*}; arch=$${p#*/}; echo "building kmm-render and kmm-upgrade for $$os/$$arch"; \
		CGO_ENABLED=0 GOOS=$$os GOARCH=$$arch $(GO) build -trimpath -ldflags '$(LDFLAGS)' \
			-o $(BIN)/image/bin/$${os}_$${arch}/ ./cmd/kmm-render ./cmd/kmm-upgrade; \
	done
	$(GO) run ./hack/image -bin $(BIN)/image/bin -platforms '$(IMAGE_PLATFORMS)' -version '$(VERSION)' \
		-revision "$$(git rev-parse HEAD 2>/dev/null)" -created '$(SOURCE_DATE_EPOCH)' \
		-layout $(BIN)/image/kmm-render -tag '$(IMAGE_TAG)' \
		$(if $(IMAGE_PUSH),-push '$(IMAGE_PUSH)') $(if $(IMAGE_INSECURE),-insecure)

RELEASE_DIR ?= $(BIN)/release
# A release version other than the one derived from git describe (SemVer, no leading v).
RELEASE_VERSION ?=

# The version is computed once (hack/release -print-version) and given to both steps, so the
# image tag is the chart's appVersion, which the chart's default kmm-render image tag follows.
.PHONY: release
release: $(HELM3) ## Release artifacts into bin/release (chart package, kmm-render for linux/darwin amd64/arm64, Helm 4 and 3 plugin archives, SHA256SUMS) and the image into bin/image/kmm-render.
	@v='$(RELEASE_VERSION)'; if [ -z "$$v" ]; then v=$$($(GO) run ./hack/release -print-version); fi; \
	echo "release $$v"; \
	$(GO) run ./hack/release -out $(RELEASE_DIR) -helm $(HELM3) -go $(GO) -version "$$v" && \
	$(MAKE) --no-print-directory image VERSION="$$v" IMAGE_TAG="$$v"

##@ Test

# Debian packages the tests use (hack/test-deps.sh says why each): shellcheck lints the chart's
# scripts; busybox runs them as the Alpine-based images do (test/scripts, test/dockerfiles). The
# busybox the tests run is bin/tools/busybox: the installed one when its sh looks commands up on
# PATH before its applets, else Debian's busybox package unpacked there (busybox-static runs its
# own applets first, which would bypass the tests' fake commands). Installed with apt-get when
# missing (as root).
.PHONY: apt-deps
apt-deps: ## Install shellcheck and busybox when missing; bin/tools/busybox is a busybox that runs PATH commands first.
	@bash hack/test-deps.sh apt $(TOOLS_DIR)

# Debian packages of the kernel test (test/kernel): qemu-system-x86 boots Debian's cloud kernel
# (linux-image-cloud-amd64) with a busybox initramfs, the modules are built against its headers
# (linux-headers-cloud-amd64, which pull in gcc and sign-file) and loaded with kmod, openssl
# makes the signing key and checks the signatures. Installed with apt-get when missing (as root).
.PHONY: kernel-deps
kernel-deps: apt-deps ## Install qemu, Debian's cloud kernel and headers, kmod and openssl for the kernel test (apt-get, when missing).
	@bash hack/test-deps.sh kernel

.PHONY: deps-report
deps-report: ## Print the busybox, shellcheck, qemu, kmod, openssl and kernel the tests use; fail naming the package when one is missing or of the wrong shape.
	@bash hack/test-deps.sh report $(TOOLS_DIR)

.PHONY: test
test: node-deps deps-report tools registry node-tools build lint fuzz ## Run every test: unit, golden, chart lint, a real kernel in qemu, end-to-end against a local control plane, and a real node (containerd, kubelet) in qemu.
	KUBEBUILDER_ASSETS=$(ASSETS) $(GO) test -count=1 -timeout 40m ./...

# Packages whose tests take -update to rewrite their golden files.
GOLDEN_PKGS = $(sort $(dir $(shell grep -rl --include='*_test.go' 'flag\.Bool."update"' pkg test cmd internal 2>/dev/null)))

.PHONY: unit
unit: apt-deps ## Run the tests that need no control plane and no built tools (quick; works on a fresh clone).
	$(GO) test -count=1 $$($(GO) list ./... | grep -v -e /test/e2e -e /test/helmcli -e /test/kernel -e /test/release -e /test/node)

.PHONY: e2e
e2e: tools build ## Run the end-to-end tests only: local control plane, Helm 3 and 4, every example.
	KUBEBUILDER_ASSETS=$(ASSETS) $(GO) test -count=1 -v -timeout 40m ./test/e2e

# Debian packages of the real-node test: the kernel test's, plus mmdebstrap and e2fsprogs for the
# guest's disk (hack/node-rootfs.sh). Installed with apt-get when missing (as root).
.PHONY: node-deps
node-deps: kernel-deps ## Install the real-node test's Debian packages (the kernel test's, mmdebstrap, e2fsprogs) when missing.
	@bash hack/test-deps.sh node

.PHONY: node-test
node-test: node-deps deps-report node-tools build ## Real containers on a real kubelet: a qemu guest joined to the local control plane, the chart installed with Helm 3 and 4 (docs/node-test.md).
	KUBEBUILDER_ASSETS=$(ASSETS) $(GO) test -count=1 -v -timeout 30m ./test/node

.PHONY: kernel-test
kernel-test: kernel-deps deps-report ## Build, sign, load and unload examples/kmod on a real kernel in qemu, with the chart's own scripts.
	$(GO) test -count=1 -v ./test/kernel

.PHONY: golden
golden: ## Rewrite every golden file after an intended change (then review git diff).
	$(GO) test -count=1 $(addprefix ./,$(GOLDEN_PKGS)) -update

.PHONY: check-golden
check-golden: golden ## Fail if `make golden` changes any committed golden file.
	@git diff --exit-code --stat -- $(addsuffix testdata,$(GOLDEN_PKGS)) || { echo "golden files are stale: run make golden and review the diff"; exit 1; }

.PHONY: bench
BENCHTIME ?= 1s
bench: bench-go bench-cluster ## Run the Go benchmarks, then the cluster benchmark, which prints the table and PASS/MISS per target (docs/benchmarks.md).

.PHONY: bench-go
bench-go: ## Run the Go benchmarks (planning, expansion, YAML in and out); BENCHTIME=1x runs each once.
	$(GO) test -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) ./pkg/...

# The cluster benchmark's flags (go run ./test/bench/cluster -h), e.g. BENCH_CLUSTER_ARGS='-sizes 1000,5000 -runs 3'.
BENCH_CLUSTER_ARGS ?=
# A Markdown file whose marked results section the cluster benchmark rewrites: BENCH_DOC=docs/benchmarks.md.
BENCH_DOC ?=

.PHONY: bench-cluster
bench-cluster: tools $(KUBECTL) ## kmm-render vs a client-go List and kubectl on a local API server at 1,000, 5,000 and 15,000 nodes (about 7 minutes on 2 cores; not part of make test).
	KUBEBUILDER_ASSETS=$(ASSETS) $(GO) run ./test/bench/cluster -kubectl $(KUBECTL) $(if $(BENCH_DOC),-doc $(BENCH_DOC)) $(BENCH_CLUSTER_ARGS)

# Fuzz targets, each run for FUZZTIME; a crasher is written to the package's testdata/fuzz/<target>/
# (keep it: it is then a regression test of every go test run). FUZZMINIMIZETIME bounds how long
# each new input is minimized: the seeds include real Helm outputs of ~80 KB, which Go would
# otherwise spend a minute each shrinking.
FUZZTIME ?= 10s
FUZZMINIMIZETIME ?= 5s

.PHONY: fuzz
fuzz: ## Run each fuzz target for FUZZTIME (default 10s; make fuzz FUZZTIME=10m for a longer run).
	$(GO) test -run='^$$' -fuzz='^FuzzPostRender$$' -fuzztime=$(FUZZTIME) -fuzzminimizetime=$(FUZZMINIMIZETIME) ./pkg/postrender
	$(GO) test -run='^$$' -fuzz='^FuzzLoadNodes$$' -fuzztime=$(FUZZTIME) -fuzzminimizetime=$(FUZZMINIMIZETIME) ./pkg/nodes
	$(GO) test -run='^$$' -fuzz='^FuzzDecodeNodeList$$' -fuzztime=$(FUZZTIME) -fuzzminimizetime=$(FUZZMINIMIZETIME) ./pkg/nodes
	$(GO) test -run='^$$' -fuzz='^FuzzDecodeNodeListFields$$' -fuzztime=$(FUZZTIME) -fuzzminimizetime=$(FUZZMINIMIZETIME) ./pkg/nodes
	$(GO) test -run='^$$' -fuzz='^FuzzKernelNaming$$' -fuzztime=$(FUZZTIME) -fuzzminimizetime=$(FUZZMINIMIZETIME) ./pkg/render
	$(GO) test -run='^$$' -fuzz='^FuzzModuleList$$' -fuzztime=$(FUZZTIME) -fuzzminimizetime=$(FUZZMINIMIZETIME) ./pkg/module

.PHONY: lint
lint: lint-chart check-generated ## gofmt, go vet, helm lint --strict, generated files up to date.
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }
	$(GO) vet ./...

.PHONY: lint-chart
lint-chart: $(HELM3) ## helm lint --strict, with the default values and each example's.
	$(HELM3) lint --strict charts/kmm
	@for e in eks gke ubuntu; do $(HELM3) lint --strict charts/kmm -f examples/$$e/values.yaml || exit 1; done

##@ Local cluster and demo

CLUSTER_NODES ?= examples/$(DEMO)/nodes.yaml

.PHONY: kmm-cluster
kmm-cluster:
	@mkdir -p $(BIN)
	@$(GO) build -trimpath -o $(BIN)/kmm-cluster ./cmd/kmm-cluster

.PHONY: cluster-up
cluster-up: tools kmm-cluster ## Start a local control plane with kwok nodes (CLUSTER_NODES=examples/eks/nodes.yaml); prints the kubeconfig.
	@$(BIN)/kmm-cluster up --nodes $(CLUSTER_NODES)

.PHONY: cluster-status
cluster-status: kmm-cluster ## Show the local cluster's processes.
	@$(BIN)/kmm-cluster status

.PHONY: cluster-down
cluster-down: kmm-cluster ## Stop the local control plane started by cluster-up or demo.
	@$(BIN)/kmm-cluster down

.PHONY: demo
demo: ## The main job on a built-in default: a local EKS-shaped cluster, the chart installed through kmm-render, loaders per kernel (DEMO=gke|ubuntu for the others).
	@echo "==> building kmm-render and the local control plane, kwok and helm into bin/ (the first build took 9 minutes on 2 cores with empty Go caches; later runs take seconds)"
	@# Two jobs: kmm-render and kmm-cluster compile while the tools link (a link uses one core).
	@$(MAKE) --no-print-directory -j2 demo-tools build kmm-cluster
	@$(BIN)/kmm-cluster down >/dev/null 2>&1 || true
	@echo "==> starting a local cluster (etcd, kube-apiserver, controller manager, scheduler, kwok) with the nodes of examples/$(DEMO)/nodes.yaml"
	@$(BIN)/kmm-cluster up --nodes examples/$(DEMO)/nodes.yaml
	@$(BIN)/kmm-cluster demo --example $(DEMO)

##@ Generate

.PHONY: generate
generate: ## Regenerate deepcopy code and CRDs (controller-gen), the chart's CRD templates and schema, and the chart README.
	CONTROLLER_GEN_VERSION=$(CONTROLLER_GEN_VERSION) GO=$(GO) bash hack/gen-crds.sh
	bash hack/chart-crds.sh
	$(GO) run ./hack/chartdoc

.PHONY: chart-readme
chart-readme: ## Regenerate charts/kmm/README.md from values.yaml and values.schema.json.
	$(GO) run ./hack/chartdoc

EKS_KERNELS_TSV ?= ../shared/data/eks-ami-kernels.tsv

.PHONY: eks-kernels
eks-kernels: ## Refresh pkg/amikernels' EKS AMI kernel data from EKS_KERNELS_TSV (default ../shared/data/eks-ami-kernels.tsv).
	@if [ ! -f "$(EKS_KERNELS_TSV)" ]; then \
		echo "eks-kernels: no $(EKS_KERNELS_TSV) here, nothing to refresh: the shipped pkg/amikernels/eks-ami-kernels.tsv stays. Pass the amazon-eks-ami CHANGELOG table (columns ami_release, kubernetes_minor, release_version, ami_type, kernel_package, kernel) as EKS_KERNELS_TSV=<file>." >&2; \
		exit 0; \
	fi; \
	$(GO) run ./hack/amikernels -in $(EKS_KERNELS_TSV) -out pkg/amikernels/eks-ami-kernels.tsv

.PHONY: check-generated
check-generated: ## Fail if generated code, CRDs, the chart's CRD templates, schema or README are stale.
	@tmp=$$(mktemp -d) && cp -r api config $$tmp/ && \
		CONTROLLER_GEN_VERSION=$(CONTROLLER_GEN_VERSION) GO=$(GO) bash hack/gen-crds.sh && \
		if ! diff -r $$tmp/api api >/dev/null || ! diff -r $$tmp/config config >/dev/null; then \
			echo "api/ or config/crd is stale: run make generate"; rm -rf $$tmp; exit 1; fi; rm -rf $$tmp
	bash hack/chart-crds.sh --check
	$(GO) run ./hack/chartdoc -check

##@ Use

.PHONY: render
render: build $(HELM3) ## Print the expanded manifests of an example: make render EXAMPLE=gke
	@$(HELM3) template kmm charts/kmm -n kmm-system -f examples/$(EXAMPLE)/values.yaml \
		--post-renderer $(BIN)/kmm-render \
		--post-renderer-args=--nodes --post-renderer-args=examples/$(EXAMPLE)/nodes.yaml

.PHONY: nodes
nodes: build ## Show an example's kernels and the mapping each hits: make nodes EXAMPLE=eks
	@$(BIN)/kmm-render nodes --nodes examples/$(EXAMPLE)/nodes.yaml -f examples/$(EXAMPLE)/values.yaml -n kmm-system

##@ Tools (pinned, built from Go modules, cached in bin/tools by version)

# Helm 3 takes its default Kubernetes version (helm template's .Capabilities) from ldflags, as
# its own Makefile sets them; Helm 4 reads it from its build info.
HELM3_LDFLAGS := -X helm.sh/helm/v3/internal/version.version=$(HELM3_VERSION) \
	-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$(K8S_MINOR) \
	-X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$(K8S_MINOR)
HELM4_LDFLAGS := -X helm.sh/helm/v4/internal/version.version=$(HELM4_VERSION)

# The tools every test and the demo run; the demo needs all but helm 4, so a first `make demo`
# builds only those (helm 4 is built by the first target that needs it).
DEMO_TOOLS := kube-apiserver kube-controller-manager kube-scheduler etcd kwok helm3
ALL_TOOLS  := $(DEMO_TOOLS) helm4
TOOL_ENV := TOOLS_DIR=$(TOOLS_DIR) GO=$(GO) K8S_VERSION=$(K8S_VERSION) ETCD_VERSION=$(ETCD_VERSION) \
	KWOK_VERSION=$(KWOK_VERSION) HELM3_VERSION=$(HELM3_VERSION) HELM4_VERSION=$(HELM4_VERSION) REGISTRY_VERSION=$(REGISTRY_VERSION) \
	CONTAINERD_VERSION=$(CONTAINERD_VERSION) BUILDKIT_VERSION=$(BUILDKIT_VERSION) ROOTLESSKIT_VERSION=$(ROOTLESSKIT_VERSION) \
	CRANE_VERSION=$(CRANE_VERSION) K8S_LDFLAGS='$(K8S_LDFLAGS)' HELM3_LDFLAGS='$(HELM3_LDFLAGS)' HELM4_LDFLAGS='$(HELM4_LDFLAGS)'

.PHONY: tools
tools: $(ASSETS)/.stamp-all-$(K8S_VERSION)-$(ETCD_VERSION)-$(KWOK_VERSION)-$(HELM3_VERSION)-$(HELM4_VERSION) ## Build the local control plane, kwok and helm 3/4.

.PHONY: demo-tools
demo-tools: $(ASSETS)/.stamp-demo-$(K8S_VERSION)-$(ETCD_VERSION)-$(KWOK_VERSION)-$(HELM3_VERSION) ## Build what the demo runs: the local control plane, kwok and helm 3.

$(ASSETS)/.stamp-demo-%: $(KWOK_STAGES)
	@$(TOOL_ENV) bash hack/build-tools.sh $(DEMO_TOOLS)
	@$(MAKE) --no-print-directory assets
	@touch $@

$(ASSETS)/.stamp-all-%: $(KWOK_STAGES)
	@$(TOOL_ENV) bash hack/build-tools.sh $(ALL_TOOLS)
	@$(MAKE) --no-print-directory assets
	@touch $@

# assets links the tools that are built into $(ASSETS) under their plain names.
.PHONY: assets
assets:
	@mkdir -p $(ASSETS)
	@for link in kube-apiserver:$(KUBE_APISERVER) kube-controller-manager:$(KUBE_CM) kube-scheduler:$(KUBE_SCHED) \
		etcd:$(ETCD) kwok:$(KWOK) kwok-stages:$(KWOK_STAGES) helm3:$(HELM3) helm4:$(HELM4) registry:$(REGISTRY); do \
		name=$${link%%:*}; file=$${link#*:}; \
		if [ -e "$$file" ]; then ln -sfn "$$file" $(ASSETS)/$$name; else rm -f $(ASSETS)/$$name; fi; \
	done

# The OCI registry, for the tests that push images or charts (not part of make tools).
$(REGISTRY):
	@$(TOOL_ENV) bash hack/build-tools.sh registry

.PHONY: registry
registry: $(REGISTRY) ## Build the OCI registry (distribution/distribution) the release and real-node tests push to.
	@$(MAKE) --no-print-directory assets

# The real-node test's guest binaries (not part of make tools): static kubelet, containerd, shim;
# and what its images hold: rootless BuildKit and crane (one go build with containerd: they share
# most of their packages).
$(KUBELET) $(DEVICE_PLUGIN):
	@$(TOOL_ENV) bash hack/build-tools.sh kubelet kmm-device-plugin

$(CONTAINERD) $(CONTAINERD_SHIM) $(BUILDKITD) $(BUILDCTL) $(ROOTLESSKIT) $(CRANE):
	@$(TOOL_ENV) bash hack/build-tools.sh containerd containerd-shim-runc-v2 buildkitd buildctl rootlesskit crane

.PHONY: node-tools
node-tools: tools $(REGISTRY) $(KUBELET) $(DEVICE_PLUGIN) $(CONTAINERD) $(CONTAINERD_SHIM) $(BUILDKITD) $(BUILDCTL) $(ROOTLESSKIT) $(CRANE) ## Build what the real-node test runs besides the control plane: registry, kubelet, containerd, the test device plugin, rootless BuildKit, crane.

# kubectl is for the cluster benchmark only (make bench-cluster), so make tools does not build it.
$(KUBECTL):
	@$(TOOL_ENV) bash hack/build-tools.sh kubectl

$(HELM3):
	@$(TOOL_ENV) bash hack/build-tools.sh helm3
	@$(MAKE) --no-print-directory assets

$(KWOK_STAGES):
	@mkdir -p $@.tmp
	@dir=$$(cd tools && $(GO) mod download -json sigs.k8s.io/kwok@$(KWOK_VERSION) | sed -n 's/.*"Dir": "\(.*\)".*/\1/p') && \
		cp $$dir/kustomize/stage/node/fast/node-initialize.yaml \
		   $$dir/kustomize/stage/node/heartbeat/node-heartbeat.yaml \
		   $$dir/kustomize/stage/pod/fast/pod-ready.yaml \
		   $$dir/kustomize/stage/pod/fast/pod-complete.yaml \
		   $$dir/kustomize/stage/pod/fast/pod-delete.yaml $@.tmp/ && chmod -R u+w $@.tmp && mv $@.tmp $@
