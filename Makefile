# o365book: set-up, the book, the tests. `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.o365book-installed
PROFILE ?= default
# torch comes first so pip resolves the rest against it; on a machine without the local wheel
# cache a CPU-only build is lighter: make venv TORCH_PIP_ARGS="--index-url https://download.pytorch.org/whl/cpu"
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
TORCH_PIP_ARGS ?=
PYTEST_ARGS ?=

.PHONY: help venv chromium book run test test-fast sync check-pairs browser-check clean

help:
	@echo "make book      set up, execute every chapter (PROFILE=$(PROFILE)) and build _build/html"
	@echo "make test      set up, run all tests: units, the smoke book, the strict build, headless Chromium"
	@echo "make test-fast unit tests only (no chapter runs)"
	@echo "make venv      create $(VENV) and install torch + o365lib[book,test] (skipped when up to date)"
	@echo "make chromium  apt-get install chromium when /usr/bin/chromium is missing"
	@echo "make sync      pair book/NN_*.py with their .ipynb (jupytext --sync), strip outputs"
	@echo "make clean     remove _build (results/ and data/ are kept)"

venv: $(STAMP)

# Re-run only when pyproject.toml changed since the last successful install.
$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet $(TORCH_PIP_ARGS) $(TORCH_SPEC)
	$(PY) -m pip install --quiet -e ".[book,test]"
	@touch $@

# $CHROMIUM may name another Chromium/Chrome binary (e.g. google-chrome on GitHub runners).
chromium:
	@if [ -x /usr/bin/chromium ]; then \
	  echo "chromium present: $$(/usr/bin/chromium --version 2>/dev/null)"; \
	elif [ -n "$$CHROMIUM" ] && [ -x "$$CHROMIUM" ]; then \
	  echo "using CHROMIUM=$$CHROMIUM"; \
	else \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update && $$SUDO apt-get install -y chromium; \
	fi

book: venv
	$(PY) -m o365lib.book run --profile $(PROFILE)

# Execute some chapters only: make run CHAPTERS="01 03" PROFILE=smoke
run: venv
	$(PY) -m o365lib.book run --profile $(PROFILE) $(if $(CHAPTERS),--chapters $(CHAPTERS))

# pytest exit 5 (no tests collected) is not a failure.
test: venv chromium
	@set +e; $(PY) -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest: no tests collected (exit 5), treated as success"; exit 0; fi; \
	exit $$rc

test-fast: venv
	@set +e; $(PY) -m pytest -m "not slow" $(PYTEST_ARGS); rc=$$?; [ $$rc -eq 5 ] && exit 0; exit $$rc

sync: venv
	$(PY) -m o365lib.book sync

check-pairs: venv
	$(PY) -m o365lib.book check-pairs

browser-check: venv chromium
	$(PY) tools/browser_check.py _build/html --pages $$(cd book && ls [0-9][0-9]_*.py | sed 's/\.py$$//') \
	  --screenshot _build/screenshots/book.png

clean:
	rm -rf _build
