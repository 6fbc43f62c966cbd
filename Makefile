# crmresearch — the two set-up commands (see README):
#   make report   install, build the demo bank if missing, render its month of reports (prints index.html)
#   make test     install with the test extra, check the import layers (import-linter), run the test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
DEMO   := data/demo
MONTH  := 2026-10
KEY    := data/pseudonym.key

.PHONY: report test lint bench clean-venv

$(BIN)/python:
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "crmresearch needs Python >= 3.11, found " + sys.version.split()[0]'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e .
	@touch $@

$(VENV)/.installed-test: $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[test]'
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

clean-venv:
	rm -rf $(VENV)
