# chapctl: the two commands that matter are `make run` and `make test`. `make help` lists the rest.
# Works on a machine with only Python 3.11+: uv is bootstrapped into .tools/ when not on PATH.

SHELL := /bin/bash
.DEFAULT_GOAL := help

# .env (copy template.env) configures every target: server URL, auth, pool, passwords.
-include .env
export

PYTHON ?= python3
UV_VERSION := 0.13.9
UV := $(shell command -v uv 2>/dev/null || echo .tools/bin/uv)
# Bytecode is compiled at install: chapctl's speed goals assume it (some machines never write .pyc).
export UV_COMPILE_BYTECODE := 1
export UV_PROJECT_ENVIRONMENT := .venv
CHAPCTL := .venv/bin/chapctl
PY := .venv/bin/python
export CHAPCTL_FLOWS_DIR ?= $(CURDIR)

# The suite's parallel workers (pytest-xdist); each starts its own servers, the groups in tests/lanes.py
# keep a one-of-a-kind server (SQLite, auth, the real chap-core) on one worker. Three on two cores: the
# tests spend much of their time waiting for servers and flow-run processes (measured: 6.5 min with
# three, 7.7 with two).
TEST_WORKERS ?= 3
PYTEST := $(UV) run --frozen --no-sync pytest -n $(TEST_WORKERS) --dist loadgroup

.PHONY: help setup run demo-plan test test-fast coverage validate compile check bench lock-test-envs start-server start-chap start-fake start-worker plan apply \
	status stop stop-pool clean distclean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-13s %s\n", $$1, $$2}'

.tools/bin/uv:
	$(PYTHON) -m venv .tools
	.tools/bin/python -m pip install --quiet "uv==$(UV_VERSION)"

setup: $(UV) ## Create .venv from the lock file (exactly the pinned versions)
	$(UV) sync --frozen --quiet
	@# chapctl's own modules too (the checkout is installed editable): a machine that never writes
	@# .pyc (PYTHONDONTWRITEBYTECODE) would otherwise recompile them on every plan.
	$(PY) -m compileall -q compiler flows

run: setup ## The whole system locally: server, fake DHIS2, apply the examples, a worker, one real run (CHAP=real: a real chap-core)
	$(CHAPCTL) validate
	$(CHAPCTL) compile --check
	$(PY) scripts/stack.py start-server
	if [ "$(CHAP)" = real ]; then $(PY) scripts/stack.py start-chap; fi
	$(PY) scripts/stack.py start-fake
	$(PY) scripts/demo.py

test: setup ## Run the whole test suite, every lane and the slow sweeps (what CI runs; artifacts must be fresh)
	$(CHAPCTL) compile --check
	$(PYTEST) -m "slow or not slow"

test-fast: setup ## The pure lane only: no server, no process (the edit loop, well under a minute)
	$(PYTEST) -m pure

coverage: setup ## Branch coverage of compiler/ and flows/ over the whole suite, measured in the test processes
	$(PYTEST) -m "slow or not slow" -p no:cacheprovider --cov=compiler --cov=flows --cov-branch --cov-report=term:skip-covered

validate: setup ## Check every project file
	$(CHAPCTL) validate

compile: setup ## Regenerate prefect.yaml, blocks/ and schema/ (commit the result)
	$(CHAPCTL) compile

check: setup ## Fail if committed artifacts are stale
	$(CHAPCTL) compile --check

lock-test-envs: $(UV) ## Re-pin the suite's other environments: a Prefect release (tests/server/envs), chap-core (tests/chap_real/envs)
	for f in tests/server/envs/*.in; do $(UV) pip compile --quiet --python-version 3.11 --generate-hashes --no-header "$$f" -o "$${f%.in}.txt"; done
	$(UV) pip compile --quiet --python-version 3.13 --generate-hashes --no-header tests/chap_real/envs/chap-core.in -o tests/chap_real/envs/chap-core.txt

bench: setup ## Run the benchmarks under bench/
	$(UV) run --frozen --no-sync python bench/compile.py
	$(UV) run --frozen --no-sync python bench/apply.py
	$(UV) run --frozen --no-sync python bench/flow.py

demo-plan: setup ## What `make run` would change on the local stack (after you edit projects/)
	$(PY) scripts/stack.py start-server
	if [ "$(CHAP)" = real ]; then $(PY) scripts/stack.py start-chap; fi
	$(PY) scripts/stack.py start-fake --keep
	$(PY) scripts/demo.py plan

start-server: setup ## Start the local Prefect server (nothing when PREFECT_API_URL names a remote one)
	$(PY) scripts/stack.py start-server

start-chap: setup ## Start a real chap-core 2.5.1 with seeded setups (for CHAP=real; needs a Python >= 3.13)
	$(PY) scripts/stack.py start-chap

start-fake: setup ## Start the fake DHIS2+CHAP server (demo data; CHAP=real: its chap route forwards to start-chap's)
	$(PY) scripts/stack.py start-fake

start-worker: setup ## Start a process worker for WORK_POOL (default chap)
	$(PY) scripts/stack.py start-worker

plan: setup ## compile --check, then show what apply would change on the server
	$(CHAPCTL) compile --check
	@$(PY) scripts/stack.py check-target
	$(CHAPCTL) plan

apply: setup ## compile --check, then make the server match the projects
	$(CHAPCTL) compile --check
	@$(PY) scripts/stack.py check-target
	$(CHAPCTL) apply

status: ## What the local stack is running
	@$(PY) scripts/stack.py status

stop-pool: ## Stop the worker (runs wait in the pool until a worker returns)
	$(PY) scripts/stack.py stop worker

stop: ## Stop everything the local stack started (by PID file)
	$(PY) scripts/stack.py stop

clean: ## Stop everything and remove local state (.local/: server database, logs; caches)
	-[ -x $(PY) ] && $(PY) scripts/stack.py clean
	rm -rf .local .pytest_cache .chapctl

distclean: clean ## Also remove the environments (.venv, .tools) and the suite's cache (tests/cachedir.py)
	-[ -x $(PY) ] && rm -rf "$$($(PY) -c 'from tests.cachedir import CACHE_ROOT; print(CACHE_ROOT)')"
	rm -rf .venv .tools
