SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c

GO ?= $(shell command -v go 2>/dev/null || echo /usr/local/go/bin/go)
PREFIX ?= $(or $(DOCKERCR_PREFIX),/opt/dockercr)

TEST_TIMEOUT ?= 40m

# FUZZ_TARGETS lists fuzz tests as package:FuzzName:EXECS entries, the
# package spelled as go test takes it. Each runs for EXECS inputs times
# FUZZ_SCALE: EXECS is about what 5 s gives on the 2-core test machine.
# The budget is a count, not a duration: with a duration, Go before 1.27
# can fail a clean run with "context deadline exceeded" as the time runs
# out (Go issue 75804; seen here on FuzzClassifyMounts).
FUZZ_TARGETS ?= \
	.:FuzzClassifyMounts:30000 \
	.:FuzzImportCheckpoint:1000 \
	.:FuzzInspectImages:15000 \
	.:FuzzReadMetadata:4000 \
	.:FuzzValidateName:30000 \
	./internal/ckptar:FuzzWalk:20000 \
	./internal/criulog:FuzzRootCauses:150000 \
	./internal/criuver:FuzzParse:400000
FUZZ_SCALE ?= 1
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

test: setup vet ## setup, vet, every test with integration required, each fuzz target about 5s (root)
	@[ "$$(id -u)" = 0 ] || { echo "make test: run as root" >&2; exit 1; }
	DOCKERCR_OLD_CRIU=$(PREFIX)/bin/criu-old \
	DOCKERCR_REQUIRE_INTEGRATION=1 \
		$(GO) test -count=1 -timeout $(TEST_TIMEOUT) ./...
	$(MAKE) --no-print-directory fuzz

unit: ## go test -short ./... (no setup, no root needed)
	$(GO) test -short ./...

fuzz: ## run each of FUZZ_TARGETS for its EXECS inputs times FUZZ_SCALE
	@if [ -z "$(strip $(FUZZ_TARGETS))" ]; then \
		echo "fuzz: FUZZ_TARGETS is empty; nothing to run"; \
	fi
	@for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; rest=$${t#*:}; name=$${rest%%:*}; \
		execs=$$(( $${rest#*:} * $(FUZZ_SCALE) )); \
		echo "fuzz: $$name in $$pkg for $$execs inputs"; \
		$(GO) test -run='^$$' -fuzz="^$$name$$" \
			-fuzztime=$${execs}x -fuzzminimizetime=$(FUZZMINIMIZE) "$$pkg"; \
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
