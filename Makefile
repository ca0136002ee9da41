# Bootstrap a local venv with pinned nox + uv, then hand every job to a nox session.
PYTHON ?= python3
VENV := .venv
NOX_VERSION := 2026.10.20
UV_VERSION := 0.9.30
STAMP := $(VENV)/.bootstrap-nox-$(NOX_VERSION)-uv-$(UV_VERSION)
LOCK_STAMP := $(VENV)/.installed-lock
NOX := $(VENV)/bin/nox

# Python keeps the bytecode it compiles (__pycache__, ignored by git), whatever the caller's
# environment says: a run starts hundreds of interpreters (topology services, scripts, tests), and
# without cached bytecode each one compiles every module it imports again (the api and worker
# imports: about 6 s of CPU instead of 2 on this machine class).
unexport PYTHONDONTWRITEBYTECODE

.PHONY: setup test phase8 ci-subset bench up down clean

$(STAMP):
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check "nox==$(NOX_VERSION)" "uv==$(UV_VERSION)"
	touch $@

# The operator's Python: .venv/bin/python runs every script from any directory
# (.venv/bin/python -m scripts.ops.tenants, .venv/bin/python scripts/identity/audit_privileges.py, ...):
# the pinned lock, then the project itself as an editable install.
$(LOCK_STAMP): requirements.lock pyproject.toml $(STAMP)
	$(VENV)/bin/uv pip install --quiet --python $(VENV)/bin/python -r requirements.lock
	$(VENV)/bin/uv pip install --quiet --python $(VENV)/bin/python --no-deps -e .
	touch $@

setup: $(LOCK_STAMP)  ## create .venv with nox and the pinned lock (nox sessions install their own)

test: $(STAMP)  ## lint, type-check, unit + integration tests (live embedded topology)
	$(NOX) -s lint typecheck tests

phase8: $(STAMP)  ## the Phase 8 closure pack, default mode -> artifacts/b07-phase8 (TOPOLOGY=netns|compose)
	$(NOX) -s phase8 $(if $(TOPOLOGY),-- --topology $(TOPOLOGY))

ci-subset: $(STAMP)  ## the closure pack's CI subset (TOPOLOGY=netns: across network namespaces, root)
	$(NOX) -s ci_subset $(if $(TOPOLOGY),-- --topology $(TOPOLOGY))

bench: $(STAMP)  ## benchmarks -> artifacts/bench/*.json
	$(NOX) -s bench

up: $(LOCK_STAMP)  ## start the native topology and leave it running (source .run/topology.env)
	$(NOX) -s topology -- up

down: $(STAMP)  ## stop it
	$(NOX) -s topology -- down

clean: down
	rm -rf .nox .venv .run .pytest_cache .mypy_cache .ruff_cache
	find artifacts -mindepth 1 ! -name .gitkeep -exec rm -rf {} +
