# twotick's build and test driver.
#
#   make test     install the test clients if absent, vet, test, short fuzz
#   make fuzz     only the fuzz pass; FUZZTIME=5m for a long run
#   make build    binaries into ./bin
#   make run      go run ./cmd/twotick serve (ARGS="--config FILE")
#   make bench    cmd/twotick-load/compare.sh
#   make readme   README.md from docs/README.head.md and docs/configuration.md
#
# PKGS=./conf/... limits vet, test and fuzz to some packages.
#
# make test is what .ci/run runs. It installs what the tests need only when
# it is missing (python3-slixmpp and curl from Debian; @xmpp/client from
# npm into testdata/interop/node_modules), so a second run skips straight
# to the tests, and it prints how long each phase took.

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := test

GO         ?= go
PKGS       ?= ./...
PYTHON     := /usr/bin/python3
INTEROP    := testdata/interop
NODE_STAMP := $(INTEROP)/node_modules/.twotick-installed

# Each fuzz target runs this many inputs in make test (a count, not a
# time: a timed run can end in "context deadline exceeded" on a loaded
# machine); `make fuzz FUZZTIME=5m`
# for a real search.
FUZZTIME ?= 20000x

# -race: the server is all goroutines. The timeout is per package binary.
GOTESTFLAGS ?= -count=1 -race -timeout=10m

# A missing interoperability client fails the run instead of skipping,
# and the server the clients talk to is built with the race detector.
export TWOTICK_REQUIRE_INTEROP := 1
export TWOTICK_INTEROP_RACE := 1

# TWOTICK_INTEROP_OFFLINE=0 skips TestInteropOffline (cmd/twotick), the
# offline delivery scenario (XEP-0198, the queue and receipts with real
# clients); it runs by default.
export TWOTICK_INTEROP_OFFLINE ?= 1

# apt-get needs root; use sudo when we are not.
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

PHASE_LOG := bin/.phase-times

# phase runs make target $(1) and records how long it took.
define phase
	@s=$$(date +%s%N); rc=0; $(MAKE) --no-print-directory $(1) || rc=$$?; \
	ms=$$(( ($$(date +%s%N) - s) / 1000000 )); \
	printf '%-8s %4d.%ds%s\n' $(1) $$((ms / 1000)) $$((ms % 1000 / 100)) \
		"$$([ $$rc -eq 0 ] || echo '  FAILED')" | tee -a $(PHASE_LOG); \
	exit $$rc
endef

.PHONY: test deps deps-apt vet gotest fuzz build run bench readme clean

test:
	@mkdir -p bin && : > $(PHASE_LOG)
	$(call phase,deps)
	$(call phase,vet)
	$(call phase,gotest)
	$(call phase,fuzz)
	@echo "---- make test phases ----" && cat $(PHASE_LOG)

deps: deps-apt $(NODE_STAMP)

# deps-apt installs the Debian packages that are missing, with a single
# apt-get update, and does nothing at all when none is.
deps-apt:
	@missing=""; \
	$(PYTHON) -c 'import slixmpp' 2>/dev/null || missing="$$missing python3-slixmpp"; \
	command -v node >/dev/null || missing="$$missing nodejs"; \
	command -v npm >/dev/null || missing="$$missing npm"; \
	command -v curl >/dev/null || missing="$$missing curl"; \
	if [ -z "$$missing" ]; then echo "deps: slixmpp, node, npm and curl present"; exit 0; fi; \
	echo "deps: installing$$missing"; \
	$(SUDO) apt-get update -qq; \
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing

# npm ci runs only when node_modules is missing or older than the lock.
$(NODE_STAMP): $(INTEROP)/package-lock.json $(INTEROP)/package.json
	npm ci --prefix $(INTEROP) --no-audit --no-fund --loglevel=error
	@touch $@

vet:
	$(GO) vet $(PKGS)

gotest:
	$(GO) test $(GOTESTFLAGS) $(PKGS)

# fuzz finds every native fuzz target (go test -list lists a package's
# names before its "ok" line) and runs each alone: -fuzz takes one target
# per package at a time.
fuzz:
	@targets=$$($(GO) test -list '^Fuzz' $(PKGS) | awk '\
		/^Fuzz/ { names[n++] = $$1; next } \
		/^ok/   { for (i = 0; i < n; i++) print $$2, names[i]; n = 0 }'); \
	if [ -z "$$targets" ]; then echo "fuzz: no fuzz targets"; exit 0; fi; \
	echo "$$targets" | while read -r pkg name; do \
		echo "fuzz: $$pkg $$name for $(FUZZTIME)"; \
		$(GO) test -run='^$$' -fuzz="^$$name\$$" -fuzztime=$(FUZZTIME) "$$pkg" </dev/null; \
	done

build:
	@mkdir -p bin
	$(GO) build -o bin/ ./cmd/...

run:
	$(GO) run ./cmd/twotick serve $(ARGS)

bench:
	@if [ -x cmd/twotick-load/compare.sh ]; then exec cmd/twotick-load/compare.sh; \
	elif [ -f cmd/twotick-load/compare.sh ]; then exec bash cmd/twotick-load/compare.sh; \
	else echo "bench: cmd/twotick-load/compare.sh does not exist yet" >&2; exit 1; fi

# readme writes README.md: the head, then the configuration reference with
# its links made relative to the top level (conf/docs_test.go checks it).
readme:
	TWOTICK_WRITE_README=1 $(GO) test -count=1 -run '^TestReadmeReference$$' ./conf

clean:
	rm -rf bin $(INTEROP)/node_modules
