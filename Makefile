# kit: build, test and run targets. `make test` is what CI runs (.ci/run); `make run` executes the
# notebooks at their full-run parameters (params/<stem>.yaml).
#
#   make venv                 .venv with the pinned stack (torch first, then -e .[dev]) and a python3 kernel
#   make test                 unit tests + nbval-lax on notebooks/*.ipynb (+ notebook cleanliness check)
#   make test-slow            the same with --run-slow
#   make run [NB=00,03]       papermill -> runs/<stem>.ipynb, wall times -> results/run_times.csv
#   make roar                 the full ROAR/KAR experiment (params/full/06_roar.yaml; hours on 2 cores)
#   make refresh-notebooks    re-execute the committed notebooks in place at their defaults, then clean
#   make clean-nb             clean notebook metadata in place (tools/clean_notebooks.py)
#   make lint                 ruff check
#   make clean                caches and runs/ (never .venv)

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Keep in step with pyproject.toml (tests/test_environment.py checks it). Installed first, on their
# own, so pip takes them from the local wheels before resolving the rest.
TORCH_PINS := torch==2.14.1 torchvision==0.29.1
PIP := $(PY) -m pip --disable-pip-version-check --no-input

NOTEBOOKS := $(sort $(wildcard notebooks/*.ipynb))
NBVAL_ARGS := --nbval-lax --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg
PYTEST_ARGS ?=
ONLY := $(if $(NB),--only $(NB))

.PHONY: help venv test test-slow run roar refresh-notebooks clean-nb check-nb lint clean

help:
	@sed -n 's/^#   //p' $(firstword $(MAKEFILE_LIST))

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || { echo "creating $(VENV) with $$($(PYTHON) --version)"; $(PYTHON) -m venv $(VENV); }
	@echo "installing $(TORCH_PINS) (a large CUDA build: may take minutes)"
	@$(PIP) install -q $(TORCH_PINS)
	@echo "installing kit (editable) with the dev extras"
	@$(PIP) install -q -e ".[dev]"
	@$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	@touch $@
	@echo "$(VENV) ready"

# Unit tests and notebooks in one pytest session (tests/conftest.py's nbval hook lives there).
# Figures/results go to a throwaway KIT_OUTPUT so tests never write into the repository.
test: $(STAMP) check-nb
	@tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	MPLBACKEND=Agg KIT_OUTPUT="$$tmp" $(PY) -m pytest tests/ $(NBVAL_ARGS) $(NOTEBOOKS) \
		-p no:cacheprovider $(PYTEST_ARGS)

test-slow: PYTEST_ARGS += --run-slow
test-slow: test

run: $(STAMP)
	@env -u MPLBACKEND $(PY) tools/run_notebooks.py $(ONLY)

# Too long for make run: the same notebook at its full configuration -> runs/06_roar_full.ipynb.
roar: $(STAMP)
	@mkdir -p $${KIT_OUTPUT:-.}/runs
	@env -u MPLBACKEND $(PY) -m papermill notebooks/06_roar.ipynb $${KIT_OUTPUT:-.}/runs/06_roar_full.ipynb \
		-f params/full/06_roar.yaml --kernel python3

refresh-notebooks: $(STAMP)
	@env -u MPLBACKEND $(PY) tools/run_notebooks.py --in-place $(ONLY)
	@$(PY) tools/clean_notebooks.py notebooks

clean-nb: $(STAMP)
	@$(PY) tools/clean_notebooks.py notebooks

check-nb: $(STAMP)
	@$(PY) tools/clean_notebooks.py --check notebooks

lint: $(STAMP)
	@if $(PY) -m ruff --version >/dev/null 2>&1; then \
		$(PY) -m ruff check kit tests tools $(NOTEBOOKS); \
	else echo "ruff is not installed in $(VENV) (pip install -e '.[dev]')"; fi

clean:
	rm -rf runs .pytest_cache .ruff_cache .hypothesis build *.egg-info
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -exec rm -rf {} +
