# didban — the two commands: `make demo` and `make test`. Both install what they need.
SHELL := /bin/bash
PY ?= python3
UV := $(PY) -m uv
export UV_PYTHON_DOWNLOADS := never
export UV_PYTHON := $(PY)

# Debian packages the lab, the probe and the browser tests need (installed only when
# something is missing). coturn: the lab's STUN servers (turnserver in STUN-only mode);
# chromium drives the explorer's browser tests (Playwright uses Debian's build: nothing
# downloads a browser).
APT_PACKAGES := iptables iproute2 curl ca-certificates procps psmisc coturn chromium
APT_COMMANDS := iptables ip tc curl ps killall turnserver chromium

# The spark extra (pyspark, pandas) needs a Java runtime: `make deps-spark` installs both.
SPARK_APT_PACKAGES := openjdk-17-jre-headless

.PHONY: sysdeps uv deps deps-spark test lint typecheck unit demo bench bench-spark i18n clean

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
# --inexact: keep the spark extra once installed (a plain `make deps` after `make test`
# would otherwise uninstall pyspark, 480 MB, and the next `make test` install it again).
deps: sysdeps uv
	@$(UV) sync --frozen --inexact --quiet --compile-bytecode
	@$(UV) run --frozen python -m compileall -q src >/dev/null

# Apache Spark for didban.scale: Java from Debian, pyspark from PyPI (docs/scale.md).
deps-spark: deps
	@if ! command -v java >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Debian packages: $(SPARK_APT_PACKAGES)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(SPARK_APT_PACKAGES) >/dev/null; \
	  else \
	    echo "note: no Java runtime and no root to install $(SPARK_APT_PACKAGES); the Spark tests will be skipped"; \
	  fi; \
	fi
	@$(UV) sync --frozen --inexact --quiet --compile-bytecode --extra spark

lint: deps
	$(UV) run --frozen ruff check src tests bench
	$(UV) run --frozen ruff format --check src tests bench

typecheck: deps
	$(UV) run --frozen mypy

test: deps-spark lint typecheck
	$(UV) run --frozen pytest

unit: deps
	$(UV) run --frozen pytest -m "not lab"

demo: deps
	$(UV) run --frozen didban demo

bench: deps
	$(UV) run --frozen python bench/probe_throughput.py
	$(UV) run --frozen python bench/classify_throughput.py
	$(UV) run --frozen python bench/ingest_throughput.py
	$(UV) run --frozen python bench/store_query.py
	$(UV) run --frozen python bench/collector_load.py
	$(UV) run --frozen python bench/explorer.py
	$(UV) run --frozen python bench/lab_accuracy.py

bench-spark: deps-spark
	$(UV) run --frozen python bench/spark_scale.py

# Extract the explorer's messages and merge them into the Farsi catalogue
# (src/didban/web/locale/fa/LC_MESSAGES/messages.po); fails while one lacks its Farsi.
i18n: deps
	$(UV) run --frozen python -m didban.web.i18n

clean:
	rm -rf .venv .pytest_cache .mypy_cache .ruff_cache build dist
