# crmresearch — the two set-up commands (see README):
#   make report   install, build the demo bank if missing, run the main job on it
#   make test     install with the test extra, run the test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
DEMO   := data/demo
OUT    := data/survival

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

report: $(VENV)/.installed $(DEMO)/customers.parquet
	$(BIN)/crmresearch validate $(DEMO)
	$(BIN)/crmresearch survival-table $(DEMO) --force --out $(OUT)/customers.parquet
	$(BIN)/crmresearch survival-table $(DEMO) --force --episodes --out $(OUT)/episodes.parquet
	@echo "main job done: demo bank in $(DEMO)/, survival tables in $(OUT)/ (customers.parquet, episodes.parquet)"

test: $(VENV)/.installed-test
	$(BIN)/python -m pytest

lint: $(VENV)/.installed-test
	$(BIN)/ruff check src tests benchmarks

bench: $(VENV)/.installed-test
	$(BIN)/python benchmarks/bench_survival.py --customers 100000 1000000

clean-venv:
	rm -rf $(VENV)
