# The two commands of the README:
#   make run    set up a virtualenv with cronwarden alone (no test tools) and run the
#               daemon on config.example.toml (SQLite); the CLI is .venv/bin/cronwarden
#   make test   set up a virtualenv with the test tools too and run lint, type checks
#               and the whole test suite
PYTHON ?= python3
VENV ?= .venv
# What `pip install cronwarden` gives, without the test tools: start-up RSS is measured
# in it (structlog imports rich when it is installed, and the test tools install it).
RUNTIME_VENV ?= .venv-runtime
CONFIG ?= config.example.toml
BIN = $(VENV)/bin

.PHONY: run test lint typecheck pytest install install-runtime install-systemd bench bench-peers soak lighthouse clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# A real (non-editable) install, so tests exercise what a wheel ships (migrations included).
install: $(BIN)/python
	$(BIN)/python -m pip install --quiet ".[test,bench]"
	$(BIN)/python -m pip install --quiet --no-deps --force-reinstall .

# What `pip install cronwarden` gives: the daemon and the CLI, none of the test tools.
install-runtime: $(BIN)/python
	$(BIN)/python -m pip install --quiet .
	$(BIN)/python -m pip install --quiet --no-deps --force-reinstall .

run: install-runtime
	@echo "cronwarden is installed: $(abspath $(BIN))/cronwarden"
	@echo "  in another terminal: $(BIN)/cronwarden tasks -c $(CONFIG)   (--help lists every verb)"
	@echo "  the dashboard and the API answer at the listen address of $(CONFIG)"
	$(BIN)/cronwarden serve -c $(CONFIG)

# The systemd unit for the cronwarden of this virtualenv (as root; see README).
install-systemd: install-runtime
	CRONWARDEN=$(abspath $(BIN))/cronwarden scripts/install-systemd

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

# pytest exits 5 when it collected no tests: that is a failure here, never a pass.
# Three workers (most tests wait on daemons and processes, not on the CPU), each test
# file kept on one worker, the longest files first (tests/conftest.py).
pytest: install
	scripts/ensure-postgres
	$(BIN)/pytest -n 3 --dist loadfile --no-loadscope-reorder; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests" >&2; exit 1; fi; exit $$rc

test: lint typecheck pytest

# Every performance figure of DESIGN.md beside a baseline measured in the same run
# (about 10 minutes on 2 cores); the latest table is kept in BENCHMARKS.md.
$(RUNTIME_VENV)/bin/cronwarden: pyproject.toml $(shell find cronwarden -name '*.py')
	$(PYTHON) -m venv $(RUNTIME_VENV)
	$(RUNTIME_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(RUNTIME_VENV)/bin/python -m pip install --quiet .
	$(RUNTIME_VENV)/bin/python -m pip install --quiet --no-deps --force-reinstall .

bench: install $(RUNTIME_VENV)/bin/cronwarden
	cd benchmarks && ../$(BIN)/python startup.py --idle 30 --daemon-python ../$(RUNTIME_VENV)/bin/python
	cd benchmarks && ../$(BIN)/python imports.py --daemon-python ../$(RUNTIME_VENV)/bin/python
	cd benchmarks && ../$(BIN)/python steady.py --daemon-python ../$(RUNTIME_VENV)/bin/python
	cd benchmarks && ../$(BIN)/python lateness.py --seconds 20
	cd benchmarks && ../$(BIN)/python burst.py --rounds 2
	cd benchmarks && ../$(BIN)/python sustained.py --seconds 15
	cd benchmarks && ../$(BIN)/python trigger_delay.py --runs 90
	cd benchmarks && ../$(BIN)/python logs.py --mb 100 --rounds 1
	cd benchmarks && ../$(BIN)/python run_pages.py --runs 1000000 --requests 200
	cd benchmarks && ../$(BIN)/python minute.py --passes raw,every,spread

# Debian's cron beside cronwarden on the same minute burst, at 1,000 and 10,000 jobs (as
# root), and bare APScheduler 3 on a 10,000-job minute (about 8 minutes on a quiet machine).
bench-peers: install
	cd benchmarks && ../$(BIN)/python cron_peer.py --tasks 1000
	cd benchmarks && ../$(BIN)/python cron_peer.py --tasks 10000 --wait 300
	cd benchmarks && ../$(BIN)/python minute.py --passes raw,apscheduler

# One daemon for 30 minutes under 200 per-second tasks, 20 API triggers/s, SSE followers,
# scrapes, reloads and retention pruning 1,000,000 runs: RSS slope, fds, threads, tasks,
# WAL, lateness, 5xx, every fire (about 35 minutes; the plot goes to benchmarks/soak.png).
soak: install
	cd benchmarks && ../$(BIN)/python soak.py --minutes 30 --history 1000000 --out .

# Lighthouse's four scores of the dashboard's tasks, runs and run pages, desktop and mobile
# (not in the test suite: needs node and npm's lighthouse, e.g.
# `npm install --prefix /tmp/lh lighthouse`, or LIGHTHOUSE=path; Debian's chromium).
lighthouse: install
	cd benchmarks && CHROME_PATH=$${CHROME_PATH:-/usr/bin/chromium} ../$(BIN)/python lighthouse.py

clean:
	rm -rf $(VENV) $(RUNTIME_VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
