# Two commands do all the set-up on a fresh Debian machine (as root): `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
VAR := $(CURDIR)/var
REDIS_PORT ?= 6399
APT_PACKAGES_TEST := redis-server prometheus prometheus-alertmanager

.PHONY: run test lint bench clean system-deps system-deps-test venv node-deps

venv: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

# Debian packages, installed only when their command is missing.
system-deps:
	@command -v redis-server >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server; }

system-deps-test:
	@missing=""; \
	command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	command -v promtool >/dev/null || missing="$$missing prometheus"; \
	command -v amtool >/dev/null || missing="$$missing prometheus-alertmanager"; \
	if [ -n "$$missing" ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; fi
	@systemctl disable --now prometheus prometheus-alertmanager prometheus-node-exporter redis-server >/dev/null 2>&1 || true

node-deps: tests/interop/node_modules/.package-lock.json
tests/interop/node_modules/.package-lock.json: tests/interop/package-lock.json
	cd tests/interop && npm ci --no-audit --no-fund --loglevel=error

# The daemon in the foreground, against a private Redis under ./var unless REDIS_URL is set,
# and a demo cookie file under ./var unless YT_DLP_COOKIES_FILE / COOKIE_SUPERVISOR_CONFIG is set.
run: venv system-deps
	@exec $(CURDIR)/scripts/run-dev.sh

test: venv system-deps-test node-deps
	$(PY) -m pytest -q

lint: venv
	$(VENV)/bin/ruff check daemon tests grafana scripts
	$(VENV)/bin/ruff format --check daemon tests grafana scripts
	$(VENV)/bin/mypy

bench: venv system-deps-test node-deps
	@command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk; }
	$(PY) tests/benchmarks/run_all.py

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
