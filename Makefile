# didban — the two commands: `make demo` and `make test`. Both install what they need.
SHELL := /bin/bash
PY ?= python3
UV := $(PY) -m uv
export UV_PYTHON_DOWNLOADS := never
export UV_PYTHON := $(PY)

# Debian packages the lab, the probe and the browser tests need (installed only when
# something is missing); chromium drives the explorer's browser tests (Playwright uses
# Debian's build: nothing downloads a browser).
APT_PACKAGES := iptables iproute2 curl ca-certificates procps psmisc chromium
APT_COMMANDS := iptables ip tc curl ps killall chromium

.PHONY: sysdeps uv deps test lint typecheck unit demo bench i18n clean

sysdeps:
	@missing=0; for c in $(APT_COMMANDS); do command -v $$c >/dev/null 2>&1 || missing=1; done; \
	if [ $$missing = 1 ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Debian packages: $(APT_PACKAGES)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(APT_PACKAGES) >/dev/null; \
	  else \
	    echo "note: some of '$(APT_COMMANDS)' are missing and cannot be installed without root and apt-get; lab tests will be skipped"; \
	  fi; \
	fi

uv:
	@$(UV) --version >/dev/null 2>&1 || $(PY) -m pip install --quiet uv

# Bytecode is compiled once here: with PYTHONDONTWRITEBYTECODE set (as on the CI
# machines) Python would otherwise recompile every imported module on every `didban`
# start (measured: 1.1 s -> 0.57 s for `didban --version`).
deps: sysdeps uv
	@$(UV) sync --frozen --quiet --compile-bytecode
	@$(UV) run --frozen python -m compileall -q src >/dev/null

lint: deps
	$(UV) run --frozen ruff check src tests bench
	$(UV) run --frozen ruff format --check src tests bench

typecheck: deps
	$(UV) run --frozen mypy

test: deps lint typecheck
	$(UV) run --frozen pytest

unit: deps
	$(UV) run --frozen pytest -m "not lab"

demo: deps
	$(UV) run --frozen didban demo

bench: deps
	$(UV) run --frozen python bench/probe_throughput.py
	$(UV) run --frozen python bench/classify_throughput.py
	$(UV) run --frozen python bench/store_query.py
	$(UV) run --frozen python bench/collector_load.py
	$(UV) run --frozen python bench/explorer.py
	$(UV) run --frozen python bench/lab_accuracy.py

# Extract the explorer's messages and merge them into the Farsi catalogue
# (src/didban/web/locale/fa/LC_MESSAGES/messages.po); fails while one lacks its Farsi.
i18n: deps
	$(UV) run --frozen python -m didban.web.i18n

clean:
	rm -rf .venv .pytest_cache .mypy_cache .ruff_cache build dist
