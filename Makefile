# One command per job; each creates .venv and installs exactly uv.lock into it when missing or stale.
VENV ?= .venv
BIN := $(VENV)/bin
STACK ?=
PLAN_ARGS ?=
UV := tools/uv
export UV_PROJECT_ENVIRONMENT := $(VENV)

.PHONY: install lock plan checkov test lint check-config bench mutate mutate-sample clean

# --locked: fail, rather than re-resolve, when pyproject.toml and uv.lock disagree (run `make lock`). uv syncs
# exactly: whatever the lock does not list is removed, so the environment is the lock, nothing more. It keeps the
# pip of a virtualenv made by `python -m venv` (an older checkout's), so such a one is made anew.
$(BIN)/.installed: pyproject.toml uv.lock
	grep -qs '^uv = ' $(VENV)/pyvenv.cfg || rm -rf $(VENV)
	$(UV) sync --locked --quiet
	touch $@

install: $(BIN)/.installed

lock: ## newest releases within pyproject.toml's ranges, for the project and checkov's own environment
	$(UV) lock --upgrade
	$(UV) lock --upgrade --project tools/checkov

plan: install ## offline plan of STACK (default: every stack) into out/; PLAN_ARGS="--base DIR" compares with a previous plan
	$(BIN)/gke-inference plan $(STACK) $(PLAN_ARGS)

checkov: plan ## checkov on every stack's rendered manifests (own locked environment, tools/checkov)
	.ci/checkov

check-config: install ## Renovate's config and the workflows against their published schemas (shipped offline)
	$(BIN)/check-jsonschema --builtin-schema vendor.renovate renovate.json
	$(BIN)/check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml

lint: check-config
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: lint ## lint, type-check and the whole test suite
	$(BIN)/pytest

bench: install ## plan-time, policy-pack and simulation benchmarks
	$(BIN)/python benchmarks/plan_time.py
	$(BIN)/python benchmarks/policy_time.py
	$(BIN)/python benchmarks/simulate_time.py

# Mutation testing (mutmut, configured in pyproject.toml): hours over every module; MUTANTS="infra.sizing*" runs one
# module's mutants, MUTATE_CHILDREN how many at once. The CRD conformance tests take part where the upstream schemas
# are (GKE_INFERENCE_SCHEMAS, else ../shared/schemas): mutmut runs the tests from mutants/, where the default path misses.
MUTANTS ?=
MUTATE_CHILDREN ?= 2
GKE_INFERENCE_SCHEMAS ?= $(if $(wildcard ../shared/schemas),$(abspath ../shared/schemas))
mutate: install ## mutation testing; surviving mutants by file (minus tests/mutation-allowlist.yaml) in mutants/report.md
	$(if $(GKE_INFERENCE_SCHEMAS),GKE_INFERENCE_SCHEMAS=$(GKE_INFERENCE_SCHEMAS)) $(BIN)/mutmut run --max-children $(MUTATE_CHILDREN) $(MUTANTS)
	$(BIN)/python tools/mutation_report.py --out mutants/report.md

# An estimate in about an hour: SAMPLE mutants drawn at random (SEED) from every module, run, and the score with its
# 95 % interval in mutants/report.md.
SAMPLE ?= 400
SEED ?= 0
mutate-sample: install ## mutation score over a random sample of every module's mutants, with its interval
	$(BIN)/python tools/mutation_sample.py --size $(SAMPLE) --seed $(SEED) --children $(MUTATE_CHILDREN)
	$(if $(GKE_INFERENCE_SCHEMAS),GKE_INFERENCE_SCHEMAS=$(GKE_INFERENCE_SCHEMAS)) $(BIN)/mutmut run --max-children $(MUTATE_CHILDREN) $$(cat mutants/sample.txt)
	$(BIN)/python tools/mutation_report.py --sample mutants/sample.txt --out mutants/report.md

clean:
	rm -rf out .pytest_cache .mypy_cache .ruff_cache .tools mutants
