# Two commands do all the set-up on a fresh Debian machine (as root): `make run` and `make test`.
# Neither starts, stops or disables a service of this machine: Debian packages are installed only
# when their command is missing, with service starts forbidden (scripts/system-deps.sh).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# One venv, two levels: `make run` needs the runtime dependencies, `make test`/`lint` add the
# test and lint tools (the `test` extra of pyproject.toml).
VENV_RUNTIME := $(VENV)/.installed-runtime
VENV_TEST := $(VENV)/.installed-test
# `make install`: DESTDIR stages into another root (see scripts/install.sh).
DESTDIR ?=

# `make sim`: 10 000 seeded simulated worlds around the decision core (tests/sim), the promises
# of docs/core.md checked after every step; prints the economy, last line `scenarios=N violations=V`.
.PHONY: run test lint bench sim clean install uninstall system-deps-run system-deps-test system-deps-bench node-deps

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(VENV_RUNTIME): pyproject.toml | $(PY)
	$(PY) -m pip install -q -e .
	touch $@

$(VENV_TEST): pyproject.toml | $(PY)
	$(PY) -m pip install -q -e '.[test]'
	touch $@ $(VENV_RUNTIME)

system-deps-run system-deps-test system-deps-bench: system-deps-%:
	@bash scripts/system-deps.sh $*

node-deps: tests/interop/node_modules/.package-lock.json
tests/interop/node_modules/.package-lock.json: tests/interop/package-lock.json
	cd tests/interop && npm ci --no-audit --no-fund --loglevel=error

# The daemon in the foreground, against a private Redis under ./var unless REDIS_URL is set,
# and a demo cookie file under ./var unless YT_DLP_COOKIES_FILE / COOKIE_SUPERVISOR_CONFIG is set.
run: system-deps-run $(VENV_RUNTIME)
	@exec $(CURDIR)/scripts/run-dev.sh

# The suite on TEST_WORKERS pytest-xdist workers: most tests wait on real processes (daemons,
# redis-server, Node workers, Prometheus), so two workers keep two cores busy. Each worker has its
# own redis-server, temporary directories and free ports; tests sharing a module's fixture stay
# on one worker (tests/conftest.py). TEST_WORKERS=0 runs it in this process, one test at a time.
TEST_WORKERS ?= 2
test: system-deps-test $(VENV_TEST) node-deps
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadgroup

lint: $(VENV_TEST)
	$(VENV)/bin/ruff check daemon tests grafana scripts alerts
	$(VENV)/bin/ruff format --check daemon tests grafana scripts alerts
	$(VENV)/bin/mypy

sim: $(VENV_TEST)
	$(PY) -m tests.sim -n $${SIM_SCENARIOS:-10000} -j 2

bench: system-deps-bench $(VENV_TEST) node-deps
	$(PY) tests/benchmarks/run_all.py

install:
	@DESTDIR="$(DESTDIR)" PYTHON="$(PYTHON)" bash scripts/install.sh install

uninstall:
	@DESTDIR="$(DESTDIR)" bash scripts/install.sh uninstall

# The private redis-server of `make run` goes with ./var (a "clean" start must not reuse it).
clean:
	@bash scripts/run-dev.sh stop-redis
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
