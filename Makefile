# chapctl: the two commands that matter are `make run` and `make test`. `make help` lists the rest.
# Works on a machine with only Python 3.11+: uv is bootstrapped into .tools/ when not on PATH.

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
UV_VERSION := 0.13.9
UV := $(shell command -v uv 2>/dev/null || echo .tools/bin/uv)
# Bytecode is compiled at install: chapctl's speed goals assume it (some machines never write .pyc).
export UV_COMPILE_BYTECODE := 1
export UV_PROJECT_ENVIRONMENT := .venv
CHAPCTL := .venv/bin/chapctl

.PHONY: help setup run test validate compile check bench clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

.tools/bin/uv:
	$(PYTHON) -m venv .tools
	.tools/bin/python -m pip install --quiet "uv==$(UV_VERSION)"

setup: $(UV) ## Create .venv from the lock file (exactly the pinned versions)
	$(UV) sync --frozen --quiet

run: setup ## Validate and compile the example projects, then show what was rendered
	$(CHAPCTL) validate
	$(CHAPCTL) compile
	@echo; echo "== prefect.yaml (first 40 lines) =="; head -n 40 prefect.yaml
	@echo; echo "== blocks/ =="; for f in blocks/*.yaml; do echo "--- $$f"; cat "$$f"; done

test: setup ## Run the whole test suite (artifacts must be fresh first)
	$(CHAPCTL) compile --check
	$(UV) run --frozen --no-sync pytest

validate: setup ## Check every project file
	$(CHAPCTL) validate

compile: setup ## Regenerate prefect.yaml, blocks/ and schema/ (commit the result)
	$(CHAPCTL) compile

check: setup ## Fail if committed artifacts are stale
	$(CHAPCTL) compile --check

bench: setup ## Run the benchmarks under bench/
	$(UV) run --frozen --no-sync python bench/compile.py

clean: ## Remove local environments and caches
	rm -rf .venv .tools .pytest_cache .chapctl
