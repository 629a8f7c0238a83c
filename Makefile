SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c

GO ?= $(shell command -v go 2>/dev/null || echo /usr/local/go/bin/go)
PREFIX ?= $(or $(DOCKERCR_PREFIX),/opt/dockercr)

TEST_TIMEOUT ?= 40m

# FUZZ_TARGETS lists fuzz tests as package:FuzzName entries, the package
# spelled as go test takes it; each runs for FUZZTIME.
FUZZ_TARGETS ?= \
	.:FuzzClassifyMounts \
	.:FuzzImportCheckpoint \
	.:FuzzInspectImages \
	.:FuzzReadMetadata \
	.:FuzzValidateName \
	./internal/ckptar:FuzzWalk \
	./internal/criulog:FuzzRootCauses \
	./internal/criuver:FuzzParse
FUZZTIME ?= 10s
# FUZZMINIMIZE bounds the minimisation of each new interesting input;
# at Go's default (60 s) a short run of a slow target (an import that
# writes files) spends all its time minimising seeds.
FUZZMINIMIZE ?= 100x

# BENCH_PKGS are the benchmark packages; empty when there is no bench/ yet.
BENCH_PKGS ?= $(if $(wildcard bench/*),./bench/...)
# BENCHTIME is the iterations per method and size (or a duration such as
# 30s); BENCH_TIMEOUT bounds the run: Docker's own checkpoint and restore
# of the 1 GiB container take tens of seconds each.
BENCHTIME ?= 3x
BENCH_TIMEOUT ?= 60m

.DEFAULT_GOAL := help
.PHONY: help setup vet test unit fuzz stress bench clean demo

help: ## list the targets
	@awk -F':.*## ' '/^[a-z]+:.*## / { printf "  %-6s %s\n", $$1, $$2 }' \
		$(MAKEFILE_LIST)

setup: ## install CRIU, Docker, Go modules; start dockerd (root)
	DOCKERCR_PREFIX=$(PREFIX) scripts/setup.sh

demo: setup ## setup, then checkpoint, restore and clone a counter container (root)
	DOCKERCR_PREFIX=$(PREFIX) GO=$(GO) scripts/demo.sh

vet: ## go vet ./...
	$(GO) vet ./...

test: setup vet ## setup, vet, every test with integration required, each fuzz target 5s (root)
	@[ "$$(id -u)" = 0 ] || { echo "make test: run as root" >&2; exit 1; }
	DOCKERCR_OLD_CRIU=$(PREFIX)/bin/criu-old \
	DOCKERCR_REQUIRE_INTEGRATION=1 \
		$(GO) test -count=1 -timeout $(TEST_TIMEOUT) ./...
	$(MAKE) --no-print-directory fuzz FUZZTIME=5s

unit: ## go test -short ./... (no setup, no root needed)
	$(GO) test -short ./...

fuzz: ## run each of FUZZ_TARGETS for FUZZTIME
	@if [ -z "$(strip $(FUZZ_TARGETS))" ]; then \
		echo "fuzz: FUZZ_TARGETS is empty; nothing to run"; \
	fi
	@for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t#*:}; \
		echo "fuzz: $$name in $$pkg for $(FUZZTIME)"; \
		$(GO) test -run='^$$' -fuzz="^$$name$$" \
			-fuzztime=$(FUZZTIME) -fuzzminimizetime=$(FUZZMINIMIZE) "$$pkg"; \
	done

stress: setup ## load and fault tests with DOCKERCR_STRESS=1: 500 cycles, more fault points (root)
	@[ "$$(id -u)" = 0 ] || { echo "make stress: run as root" >&2; exit 1; }
	DOCKERCR_STRESS=1 DOCKERCR_REQUIRE_INTEGRATION=1 \
		$(GO) test -count=1 -timeout $(TEST_TIMEOUT) -v -run '^Test(Load|Fault)' ./integration/

bench: ## run the benchmarks in BENCH_PKGS
	@if [ -z "$(strip $(BENCH_PKGS))" ]; then \
		echo "bench: BENCH_PKGS is empty; nothing to run"; \
	else \
		$(GO) test -count=1 -run='^$$' -bench=. -benchtime=$(BENCHTIME) \
			-timeout $(BENCH_TIMEOUT) $(BENCH_PKGS); \
	fi

clean: ## remove build outputs and the test cache
	rm -rf bin .cache
	rm -f *.test *.out
	$(GO) clean -testcache
