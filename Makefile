# One command per job; each creates .venv and installs the project when missing or stale.
VENV ?= .venv
BIN := $(VENV)/bin
STACK ?=

.PHONY: install plan checkov test lint bench clean

$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || python3 -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

install: $(BIN)/.installed

plan: install ## offline plan of STACK (default: every stack) into out/
	$(BIN)/gke-inference plan $(STACK)

checkov: plan ## checkov on every stack's rendered manifests (own virtualenv .ci-checkov-venv)
	.ci/checkov

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: lint ## lint, type-check and the whole test suite
	$(BIN)/pytest

bench: install ## plan-time, policy-pack and simulation benchmarks
	$(BIN)/python benchmarks/plan_time.py
	$(BIN)/python benchmarks/policy_time.py
	$(BIN)/python benchmarks/simulate_time.py

clean:
	rm -rf out .pytest_cache .mypy_cache .ruff_cache
