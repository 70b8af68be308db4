# deqbench: every target sets itself up on a fresh machine (a virtual environment in .venv).
#   make run    set up, then every strategy on the default problems (one of each kind), quick,
#               one cell per CPU at a time
#   make test   set up, then the test suite (what CI runs)
#   make docs   set up, then the documentation site into site/ (mkdocs, strict)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU build of torch; an unpinned `torch` would pull a CUDA build of several GB.
# On a GPU machine: make TORCH=torch setup
TORCH ?= torch==2.13.0
STAMP := $(VENV)/.installed

comma := ,

.PHONY: setup run test lint docs clean ratios bench-jax bench-peers train perf perf-gpu perf-zoo
.PHONY: asv-machine asv-run asv-publish asv-compare asv-continuous

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check "$(TORCH)"
	$(BIN)/python -m pip install -q --disable-pip-version-check -e ".[dev]"
	touch $(STAMP)

setup: $(STAMP)

run: setup
	$(BIN)/deqbench run --strategy all --problem default --quick --jobs auto

test: setup
	$(BIN)/python -m pytest

lint: setup
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

# The documentation site (mkdocs.yml) into site/, strict: a broken link, a missing page or
# a docstring reference that does not resolve fails the build.
docs: setup
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

clean:
	rm -rf $(VENV) .asv .pytest_cache .hypothesis results/asv results/asv-html site build/docs-api

# The side-by-side ratios benchmark: pinn_grad on tanh m=256, batch 128, tolerances 1e-10,
# then analytic's time and memory over the others' (one run: ratios, not absolute numbers).
RATIOS_DIR ?= results/ratios-m256
ratios: setup
	rm -rf $(RATIOS_DIR)
	$(BIN)/deqbench run -s analytic,unrolled,iterative-backward -p tanh -q pinn_grad \
	  --size large --f-tol 1e-10 --b-tol 1e-10 --threads 1 --out $(RATIOS_DIR)
	$(BIN)/python -m deqbench.harness.report.ratios $(RATIOS_DIR)

# The JAX backend's benchmark: jax-analytic and jax-implicit against torch analytic on grad
# and pinn_grad (tanh m=256, batch 128, float64, tolerances 1e-10, one thread): median time
# without compilation, compile time, peak memory, XLA's temp buffers. One run.
JAX_BENCH_DIR ?= results/jax-m256
bench-jax: setup
	rm -rf $(JAX_BENCH_DIR)
	$(BIN)/deqbench run -s analytic,jax-analytic,jax-implicit -p tanh -q grad,pinn_grad \
	  --size large --f-tol 1e-10 --b-tol 1e-10 --threads 1 --out $(JAX_BENCH_DIR)
	$(BIN)/python -m deqbench.harness.report.ratios $(JAX_BENCH_DIR)

# The training benchmark (docs/training.md): the PIDEQ Van der Pol task trained with each
# strategy's gradient and the MLP baseline, 3 seeds, one thread; then its report (figures,
# report.md, report.html) in $(TRAIN_DIR)-report. About 15 minutes on 2 shared cores.
TRAIN_DIR ?= results/train-vanderpol
train: setup
	rm -rf $(TRAIN_DIR) $(TRAIN_DIR)-report
	$(BIN)/deqbench train -p vanderpol -s analytic,iterative-backward,unrolled,implicit-vjp \
	  --seeds 3 --steps 250 --lr 1e-2 --threads 1 --out $(TRAIN_DIR)
	$(BIN)/deqbench report $(TRAIN_DIR) --out $(TRAIN_DIR)-report

# analytic's speed targets (docs/benchmarks.md): every strategy that claims grad / pinn_grad exact
# (PEERS: more, e.g. once merged; unregistered names are skipped with a note), timed
# interleaved in one process against one plain forward solve, tanh m = 64, 256, 1024,
# batch 128, float64, tol 1e-10, one thread; then memory side by side, a worker per cell.
PERF_STRATEGIES ?= all
PEERS ?=
PERF_SIZES ?= 64,256,1024
PERF_DIR ?= results/perf-m256
perf: setup
	$(BIN)/python -m deqbench.harness.bench.speed -s $(PERF_STRATEGIES)$(if $(PEERS),$(comma)$(PEERS)) \
	  --sizes $(PERF_SIZES) --repeats 7 --threads 1
	rm -rf $(PERF_DIR)
	$(BIN)/deqbench run -s analytic,unrolled,iterative-backward,jax-analytic,jax-implicit$(if $(PEERS),$(comma)$(PEERS)) \
	  -p tanh -q grad,pinn_grad --size large --f-tol 1e-10 --b-tol 1e-10 --threads 1 --out $(PERF_DIR)
	$(BIN)/python -m deqbench.harness.report.ratios $(PERF_DIR)

# The speed table over the PINN zoo (harness/bench/zoo.py, issue 28): every exact strategy,
# torch, JAX and the installed peers, on every PINN family at the default and large presets,
# grad, pinn_grad and pinn2_grad, interleaved in one process on one CPU; each row's time over
# a forward solve and over the fastest, the solver work in forward solves, and a summary of
# the fastest torch and JAX strategy per problem and query. ZOO_PROBLEMS picks families.
ZOO_PROBLEMS ?= vanderpol,fourtanks,heat1d,wave1d,poisson2d,burgers1d,mongeampere2d,inr
ZOO_PRESETS ?= default,large
perf-zoo: setup
	$(BIN)/python -m deqbench.harness.bench.zoo -p $(ZOO_PROBLEMS) --presets $(ZOO_PRESETS) --repeats 5 --threads 1

# The same table on a CUDA machine (harness/bench/gpu_table.py): analytic, jax-analytic, unrolled and
# the correct peers that are installed, grad and pinn_grad, m = PERF_SIZES, float32 and
# float64, absolute times (CUDA-synchronized) and peak device memory (torch's allocator;
# XLA's, a child process per JAX cell). Needs a CUDA torch (make TORCH=torch setup) and, for
# the JAX rows, a CUDA jaxlib; without CUDA it exits 2 (--device cpu: a dry run).
perf-gpu: setup
	$(BIN)/python -m deqbench.harness.bench.gpu_table --sizes $(PERF_SIZES) --repeats 7

# Peers side by side (docs/benchmarks.md): our analytic (torch) and jax-analytic against the peers
# that answer grad or pinn_grad, on tanh at m = 64, 256, 1024 (batch 128, float64,
# tolerances 1e-10, one thread): median time without compilation, compile time, peak memory,
# error. One run; a cell past PEERS_TIMEOUT seconds is recorded as a timeout (torchdeq-ift's
# pinn_grad takes one backward solve per state component). The oracle has its own budget,
# PEERS_ORACLE_TIMEOUT: its first answer at m = 1024 (dense 1024 x 1024 work per sample, plus
# its finite-difference error estimate) takes about 15 minutes, once; it is cached after.
PEERS_BENCH_DIR ?= results/peers-bench
PEERS_TIMEOUT ?= 420
PEERS_ORACLE_TIMEOUT ?= 3600
bench-peers: setup
	rm -rf $(PEERS_BENCH_DIR)
	$(BIN)/deqbench run -s analytic,jax-analytic,torchdeq-ift,optimistix-implicit,optimistix-implicit-gmres,optimistix-checkpoint,jaxopt-implicit \
	  -p tanh -q grad,pinn_grad --size large --sweep m=64,256,1024 --f-tol 1e-10 --b-tol 1e-10 \
	  --threads 1 --repeats 3 --timeout $(PEERS_TIMEOUT) --oracle-timeout $(PEERS_ORACLE_TIMEOUT) \
	  --out $(PEERS_BENCH_DIR)
	$(BIN)/python -m deqbench.harness.report.ratios $(PEERS_BENCH_DIR)
	$(BIN)/python -m deqbench.harness.report.markdown --side-by-side $(PEERS_BENCH_DIR)

# --- asv (docs/asv.md) ---------------------------------------------------------------
# The suite (benchmarks/) runs against the project as installed in $(VENV): --python=same.
ASV := $(BIN)/python -m asv
ASV_ARGS ?=
BASE ?= main
FACTOR ?= 1.1
ASV_BASE := .asv/base

asv-machine: setup
	$(ASV) machine --yes

asv-run: asv-machine
	$(ASV) run --python=same --set-commit-hash $$(git rev-parse HEAD) $(ASV_ARGS)

asv-publish: setup
	$(ASV) publish

asv-compare: setup
	$(ASV) compare --split --factor $(FACTOR) $(BASE) HEAD

# `asv continuous` refuses an existing environment (it cannot install other commits), so
# this does what it does: BASE's project, installed into .asv/base and put first on the
# benchmarks' path (ASV_PYTHONPATH, as asv drops PYTHONPATH), then the working tree's, both
# measured by the working tree's suite; fails when a benchmark got worse by more than
# FACTOR, or started failing.
asv-continuous: asv-machine
	rm -rf $(ASV_BASE) && mkdir -p $(ASV_BASE)/src
	git archive $(BASE) | tar -x -C $(ASV_BASE)/src
	$(BIN)/python -m pip install -q --no-deps --no-build-isolation --target $(ASV_BASE)/site $(ASV_BASE)/src
	ASV_PYTHONPATH=$(CURDIR)/$(ASV_BASE)/site $(ASV) run --python=same --set-commit-hash $(BASE) $(ASV_ARGS)
	$(ASV) run --python=same --set-commit-hash HEAD $(ASV_ARGS)
	$(ASV) compare --split --only-changed --factor $(FACTOR) $(BASE) HEAD | tee $(ASV_BASE)/compare.txt
	! grep -qE '^\| [+!] ' $(ASV_BASE)/compare.txt
