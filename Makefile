# One entry point for people and CI alike.  `make test` works on a fresh Debian 12 machine:
# it creates .venv, installs dnsseal with its test dependencies, installs (as root) the
# Debian packages the interop tests use as oracles, then runs lint, types and the suite.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

# Debian packages used as interop oracles by the tests and benchmarks (chromium: the status
# page in a real browser; prometheus: promtool lints /metrics and the contrib/ alert rules).
DEB_PACKAGES := bind9 bind9-utils bind9-dnsutils ldnsutils knot knot-dnsutils \
                knot-dnssecutils unbound nsd dnsperf softhsm2 opensc libengine-pkcs11-openssl \
                chromium prometheus

PYTEST_ARGS ?=
# Test processes (pytest-xdist).  Most of the suite's time is end-to-end tests waiting on
# servers and accelerated policy timers, not CPU, so two processes on two cores halve it.
# Every test picks its ports from its own worker's slice (tests/conftest.py free_port).
# TEST_JOBS=0 runs everything in one process.
TEST_JOBS ?= 2
PY_DIRS := $(wildcard src tests benchmarks)

.PHONY: test lint type unit interop serve fmt deps venv system-deps clean bench man docs

test: deps lint type unit

deps: venv system-deps

venv: $(STAMP)

# setup.py and the C file too: pip builds the UDP loop's extension into src/ (editable).
$(STAMP): pyproject.toml setup.py src/dnsseal/server/_udpfast.c
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

# Installs only what is missing; `apt-get update` runs once, and only when something is.
# Services are kept from starting during install (policy-rc.d): the tests start their own
# daemons on ports they choose.
system-deps:
	@missing=""; for p in $(DEB_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" != 0 ]; then \
	  echo "warning: not root, cannot install:$$missing (interop tests needing them will fail)" >&2; exit 0; \
	fi; \
	echo "installing Debian packages:$$missing"; \
	had_policy=0; [ -e /usr/sbin/policy-rc.d ] && had_policy=1; \
	[ $$had_policy = 1 ] || printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; \
	chmod +x /usr/sbin/policy-rc.d; \
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	rc=$$?; [ $$had_policy = 1 ] || rm -f /usr/sbin/policy-rc.d; exit $$rc

lint: venv
	$(BIN)/ruff format --check $(PY_DIRS)
	$(BIN)/ruff check $(PY_DIRS)

type: venv
	$(BIN)/mypy --strict src

unit: venv
	$(BIN)/pytest -n $(TEST_JOBS) --dist worksteal $(PYTEST_ARGS)

interop: deps
	$(BIN)/pytest -n $(TEST_JOBS) --dist worksteal -m interop $(PYTEST_ARGS)

fmt: venv
	$(BIN)/ruff format $(PY_DIRS)
	$(BIN)/ruff check --fix $(PY_DIRS)

serve: deps
	$(BIN)/dnsseal serve

bench: deps
	$(BIN)/python benchmarks/sign_bench.py

# Man pages from the command definitions (the same text as --help): man/dnsseal*.1.
# Read one with `man -l man/dnsseal-signzone.1`; install with `cp man/*.1 /usr/local/share/man/man1/`.
man: venv
	rm -rf man
	$(BIN)/python -m dnsseal.cli.manpages man

# docs/configuration.md from the table of options (src/dnsseal/storage/options.py); a test
# fails when the committed page is stale.
docs: venv
	$(BIN)/python -m dnsseal.cli.configdoc docs/configuration.md

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
	find src -name '*.so' -delete
