# crmresearch — the two set-up commands (see README):
#   make report   install from the lock, build the demo bank if missing, render its month of reports (prints index.html)
#   make test     install from the dev lock, check the import layers (import-linter), run the test suite
# and for the analyst / the maintainer:
#   make lab      install from the dev lock, register the "crmresearch" kernel, start JupyterLab on notebooks/
#   make lock     refresh the lock files from pyproject.toml (after adding or changing a dependency; README "Locked environment")
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
DEMO   := data/demo
MONTH  := 2026-10
KEY    := data/pseudonym.key

# The lock files (docs/decisions.md, "A locked environment"): exact versions and hashes for Python 3.11.
#   LOCK      the dependencies of the package (make report)
#   LOCK_DEV  the same versions plus every extra: test, pdf, lab, ... (make test, CI, make lab)
LOCK     := requirements/py311.lock
LOCK_DEV := requirements/py311-dev.lock
PIP_VERSION := 26.3
UV_VERSION  := 0.13.9
TOOLS    := .venv-tools
UV       := $(TOOLS)/bin/uv
COMPILE  := $(UV) pip compile pyproject.toml --python-version 3.11 --universal --generate-hashes --quiet \
            --custom-compile-command 'make lock'
LAB_PORT ?= 8888
LAB_ARGS ?=
# JupyterLab refuses to run as root unless told (a container, CI)
LAB_ROOT := $(if $(filter 0,$(shell id -u)),--allow-root,)

.PHONY: report test lint bench lab lock lock-upgrade clean-venv

$(BIN)/python:
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "the lock is for Python 3.11, found " + sys.version.split()[0] + " (make PYTHON=python3.11 ...)"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet "pip==$(PIP_VERSION)"

# the lock first (every version and hash checked), then the package itself without its dependencies
$(VENV)/.installed: $(BIN)/python pyproject.toml $(LOCK)
	$(BIN)/python -m pip install --quiet --require-hashes -r $(LOCK)
	$(BIN)/python -m pip install --quiet --no-deps -e .
	@touch $@

$(VENV)/.installed-test: $(BIN)/python pyproject.toml $(LOCK_DEV)
	$(BIN)/python -m pip install --quiet --require-hashes -r $(LOCK_DEV)
	$(BIN)/python -m pip install --quiet --no-deps -e .
	@touch $@ $(VENV)/.installed

$(DEMO)/customers.parquet: | $(VENV)/.installed
	$(BIN)/crmresearch demo-data $(DEMO)

# the demo's pseudonym key (owner-only, git-ignored); a bank keeps its own outside the repository
$(KEY): | $(VENV)/.installed
	$(BIN)/crmresearch keygen $(KEY)

report: $(VENV)/.installed $(DEMO)/customers.parquet $(KEY)
	$(BIN)/crmresearch validate $(DEMO)
	$(BIN)/crmresearch report $(DEMO) --month $(MONTH) --params params/defaults.yaml --key-file $(KEY) --out reports

test: $(VENV)/.installed-test
	$(BIN)/lint-imports --no-cache
	$(BIN)/python -m pytest

lint: $(VENV)/.installed-test
	$(BIN)/ruff check src tests benchmarks

bench: $(VENV)/.installed-test
	$(BIN)/python benchmarks/bench_survival.py --customers 100000 1000000

# JupyterLab on notebooks/ with the "crmresearch" kernel (this venv's Python), on 127.0.0.1 only; Ctrl-C stops
# it. It prints the address with its token. LAB_ARGS: more options (tests/test_lab.py passes a token).
lab: $(VENV)/.installed-test
	$(BIN)/python -m ipykernel install --user --name crmresearch --display-name "Python (crmresearch)"
	exec $(BIN)/jupyter lab --no-browser --ip 127.0.0.1 --port $(LAB_PORT) --ServerApp.root_dir=notebooks $(LAB_ROOT) $(LAB_ARGS)

# uv, pinned, in a venv of its own (it is not part of the locked environment)
$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet "uv==$(UV_VERSION)"

# Refresh the locks from pyproject.toml: keeps every pin that still fits, adds what is new (every extra,
# --all-extras), and writes the same versions into environment.yml. lock-upgrade moves every pin to the newest.
lock: $(UV)
	$(COMPILE) --all-extras $(UPGRADE) -o $(LOCK_DEV)
	$(COMPILE) -c $(LOCK_DEV) -o $(LOCK)
	$(TOOLS)/bin/python requirements/sync_environment.py $(LOCK_DEV) environment.yml

lock-upgrade:
	$(MAKE) lock UPGRADE=--upgrade

clean-venv:
	rm -rf $(VENV) $(TOOLS)
