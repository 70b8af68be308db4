# deqbench: every target sets itself up on a fresh machine (a virtual environment in .venv).
#   make run    set up, then `deqbench run --strategy all --quick` on the default problems
#   make test   set up, then the test suite (what CI runs)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU build of torch; an unpinned `torch` would pull a CUDA build of several GB.
# On a GPU machine: make TORCH=torch setup
TORCH ?= torch==2.13.0
STAMP := $(VENV)/.installed

.PHONY: setup run test lint clean ratios asv-machine asv-run asv-publish asv-compare asv-continuous

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check "$(TORCH)"
	$(BIN)/python -m pip install -q --disable-pip-version-check -e ".[dev]"
	touch $(STAMP)

setup: $(STAMP)

run: setup
	$(BIN)/deqbench run --strategy all --quick

test: setup
	$(BIN)/python -m pytest

lint: setup
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis results/asv results/asv-html

# The issue's side-by-side benchmark: pinn_grad on tanh m=256, batch 128, tolerances 1e-10,
# then analytic's time and memory over the others' (one run: ratios, not absolute numbers).
RATIOS_DIR ?= results/ratios-m256
ratios: setup
	rm -rf $(RATIOS_DIR)
	$(BIN)/deqbench run -s analytic,unrolled,iterative-backward -p tanh -q pinn_grad \
	  --size large --f-tol 1e-10 --b-tol 1e-10 --threads 1 --out $(RATIOS_DIR)
	$(BIN)/python -m deqbench.harness.ratios $(RATIOS_DIR)
