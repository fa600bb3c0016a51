# stvg-lab: the README's first two commands.
#   make demo   set up .venv, then run the whole recipe on the synthetic default (CPU)
#   make test   set up .venv, then run the test suite (what .ci/run calls)
# Each target does its own set-up, so a fresh machine with only Python 3.10+ needs nothing else.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.stvg-lab-installed
# torch first, pinned, so pip takes the CPU wheel instead of resolving several GB of CUDA
# packages; torchvision is deliberately not installed on CPU (its CUDA wheel breaks CPU torch).
TORCH  ?= torch==2.13.0
PYTEST_ARGS ?=

.PHONY: demo test setup clean-venv

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

# One torch thread here too: the stand-in is too small to gain from two, and a second OpenMP thread
# beside anything else on 2 cores made a GRPO step ~2x slower (6 s vs ~3 s, bench/README.md).
demo: $(STAMP)
	OMP_NUM_THREADS=1 $(BIN)/stvg-lab demo

# One torch thread: the tests run model forwards beside notebook kernels and a browser on 2
# cores, where two threads per process oversubscribe the CPU (a training step measured 10x slower).
test: $(STAMP)
	HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1 $(BIN)/python -m pytest $(PYTEST_ARGS)

clean-venv:
	rm -rf $(VENV)
