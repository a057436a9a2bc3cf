# Two commands set everything up on a fresh machine:  make demo   and   make test
PYTHON ?= python3
VENV ?= .venv
OLDEST_VENV ?= .venv-oldest
# The oldest google-genai we support; CI runs the instrumentation tests against it too.
OLDEST_GENAI ?= 1.20.0
# The last google-genai with the first generated Interactions client (1.55 to 2.8); CI runs
# the instrumentation tests against it as well, in the oldest's venv.
INTERACTIONS_V1_GENAI ?= 2.8.0
# The oldest Langfuse SDK our dependency range allows (no span filter, no propagate_attributes);
# CI runs the tests beside the SDK against it too, in a venv of its own (the oldest google-genai
# venv keeps the newest langfuse: Metrics API answers need a newer SDK's API client).
OLDEST_LANGFUSE ?= 3.0.0
LANGFUSE_OLDEST_VENV ?= .venv-langfuse-oldest
# Agent frameworks on top of google-genai (tests marked frameworks, docs/frameworks.md): heavy,
# so a venv of their own, with the versions the tests were written against.
FRAMEWORKS_VENV ?= .venv-frameworks
FRAMEWORKS ?= google-adk==2.15.0 'pydantic-ai-slim[google]==2.78.0' langchain-google-genai==4.4.3 langsmith==0.15.1
BIN = $(VENV)/bin

.PHONY: demo browser test test-oldest test-interactions-v1 test-langfuse-oldest test-frameworks lint bench install clean collector

$(BIN)/otel-gemini: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# dev includes every extra ([all]: server, gateway, testing, langfuse): the demo runs the
	# fakes ([testing]), the tests everything.
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

install: $(BIN)/otel-gemini

# Where `make demo` keeps its cost store, for the dashboard it ends by pointing to.
DEMO_DB ?= .demo/costs.sqlite3

## The product's main job on its embedded default: no keys, no network. It ends by printing
## the command that opens the dashboard on the demo's store (a fresh store each run).
demo: install
	rm -f $(DEMO_DB) $(DEMO_DB)-wal $(DEMO_DB)-shm
	$(BIN)/otel-gemini demo --db $(DEMO_DB)

## The whole test suite (newest google-genai), then the compatibility runs on older ones.
test: install collector browser
	$(BIN)/python -m pytest -q -n 2 tests
	$(MAKE) test-interactions-v1
	$(MAKE) test-langfuse-oldest
	$(MAKE) test-frameworks

## The OpenTelemetry Collector the collector tests run (built once, then cached) and the
## Node.js test app's packages. Without Go (or npm) this says so and goes on: the tests
## that need them skip with that reason, the rest of `make test` runs. CI has both.
collector:
	@if command -v go >/dev/null 2>&1; then \
		bash collector-config/build-collector.sh; \
	else \
		echo "make collector: Go is not installed: not building the OpenTelemetry Collector; its tests will skip" >&2; \
	fi
	@if command -v npm >/dev/null 2>&1; then \
		cd tests/node_app && npm ci --no-audit --no-fund; \
	else \
		echo "make collector: npm is not installed: not installing tests/node_app; the Node.js tests will skip" >&2; \
	fi

## Headless Chromium and its WebDriver for the dashboard's browser test (tests/test_dashboard.py):
## Debian's packages, installed only where missing, as root or through sudo. Elsewhere this says
## so and goes on, and that test skips with the reason.
browser:
	@if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then \
		:; \
	elif ! command -v apt-get >/dev/null 2>&1; then \
		echo "make browser: no apt-get here: not installing Chromium; the dashboard's browser test will skip" >&2; \
	elif [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null \
			|| echo "make browser: installing chromium failed; the dashboard's browser test will skip" >&2; \
	elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then \
		sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null \
			|| echo "make browser: installing chromium failed; the dashboard's browser test will skip" >&2; \
	else \
		echo "make browser: not root and no sudo: not installing Chromium; the dashboard's browser test will skip" >&2; \
	fi

test-oldest:
	$(PYTHON) -m venv $(OLDEST_VENV)
	$(OLDEST_VENV)/bin/pip install -q --upgrade pip
	$(OLDEST_VENV)/bin/pip install -q -e '.[dev]' 'google-genai==$(OLDEST_GENAI)'
	$(OLDEST_VENV)/bin/python -m pytest -q -n 2 -m genai tests

test-interactions-v1: test-oldest
	$(OLDEST_VENV)/bin/pip install -q 'google-genai==$(INTERACTIONS_V1_GENAI)'
	$(OLDEST_VENV)/bin/python -m pytest -q -n 2 -m genai tests

test-langfuse-oldest:
	$(PYTHON) -m venv $(LANGFUSE_OLDEST_VENV)
	$(LANGFUSE_OLDEST_VENV)/bin/pip install -q --upgrade pip
	$(LANGFUSE_OLDEST_VENV)/bin/pip install -q -e '.[dev]' 'langfuse==$(OLDEST_LANGFUSE)'
	$(LANGFUSE_OLDEST_VENV)/bin/python -m pytest -q -n 2 -m langfuse_sdk tests

## ADK, pydantic-ai, LangChain and LangSmith against the fake Gemini (about a minute: most of it
## the install; the tests themselves take seconds).
test-frameworks:
	$(PYTHON) -m venv $(FRAMEWORKS_VENV)
	$(FRAMEWORKS_VENV)/bin/pip install -q --upgrade pip
	$(FRAMEWORKS_VENV)/bin/pip install -q -e '.[dev]' $(FRAMEWORKS)
	$(FRAMEWORKS_VENV)/bin/python -m pytest -q -n 2 -m frameworks tests

lint: install
	$(BIN)/ruff check otel_gemini tests benchmarks
	$(BIN)/ruff format --check otel_gemini tests benchmarks
	$(BIN)/mypy --strict otel_gemini

bench: install
	$(BIN)/python benchmarks/overhead.py

clean:
	rm -rf $(VENV) $(OLDEST_VENV) $(LANGFUSE_OLDEST_VENV) $(FRAMEWORKS_VENV) .pytest_cache .mypy_cache .ruff_cache
