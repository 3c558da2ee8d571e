# Quick start: `make demo` and `make test` install missing Debian packages, configure, build and run.
BUILD_DIR ?= build
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
CMAKE_ARGS ?=
# Another LibTorch for configure/build/test/demo: its install prefix (e.g. an unpacked libtorch/, or a wheel's
# torch.utils.cmake_prefix_path) or the folder holding its TorchConfig.cmake. Empty: Debian's. Use a fresh
# BUILD_DIR when switching, since CMake caches the LibTorch it found: make test TORCH_DIR=... BUILD_DIR=build-x
TORCH_DIR ?=
# make test-torch-wheel: the LibTorch inside the PyPI PyTorch CPU wheel, installed with pip into a virtual
# environment inside TORCH_WHEEL_BUILD_DIR (needs python3 with its venv module: Debian's python3-venv).
TORCH_WHEEL_VERSION ?= 2.13.0
TORCH_WHEEL_BUILD_DIR ?= build-torch-wheel
TORCH_WHEEL_VENV ?= $(TORCH_WHEEL_BUILD_DIR)/venv
PYTHON3 ?= python3

# Nothing when TORCH_DIR is empty; -DTorch_DIR and the Caffe2_DIR beside it (else TorchConfig may take another
# LibTorch's Caffe2 from the system paths) when it holds TorchConfig.cmake; else -DCMAKE_PREFIX_PATH.
TORCH_DIR_ABS = $(abspath $(TORCH_DIR))
TORCH_DIR_ARG = $(if $(TORCH_DIR),$(if $(wildcard $(TORCH_DIR)/TorchConfig.cmake),\
  -DTorch_DIR=$(TORCH_DIR_ABS) -DCaffe2_DIR=$(abspath $(TORCH_DIR_ABS)/../Caffe2),-DCMAKE_PREFIX_PATH=$(TORCH_DIR_ABS)),)
TORCH_WHEEL_PYTHON = $(TORCH_WHEEL_VENV)/bin/python

.PHONY: all deps configure build demo demo-real test chat test-torch-wheel bench clean check-fresh-debian format format-check

# Same as build.
all: build

# Installs the missing Debian packages (cmake/install-deps.sh).
deps:
	bash cmake/install-deps.sh

# Configures BUILD_DIR (Release, tests and examples) against Debian's LibTorch, or TORCH_DIR's when set.
configure: deps
	cmake -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=Release -DGRPO_BUILD_TESTS=ON -DGRPO_BUILD_EXAMPLES=ON $(TORCH_DIR_ARG) $(CMAKE_ARGS)

# Builds every target of BUILD_DIR.
build: configure
	cmake --build $(BUILD_DIR) -j $(JOBS)

# Trains the arithmetic demo (about 5 minutes) and writes its outputs to BUILD_DIR/demo.
demo: build
	$(BUILD_DIR)/examples/arithmetic_grpo --output-dir $(BUILD_DIR)/demo

# Builds and runs every test; `make test TORCH_DIR=<prefix> BUILD_DIR=<dir>` runs them against another LibTorch.
# First fetches SmolLM2-135M-Instruct's GGUF into BUILD_DIR/models for the real-model tests (98 MB, once per
# machine; offline, those tests skip with a message).
test: build
	-cmake -DDEST=$(BUILD_DIR)/models -DREQUIRED=OFF -P cmake/fetch-smollm2.cmake
	cd $(BUILD_DIR) && ctest --output-on-failure -j $(JOBS)

# SmolLM2-135M-Instruct answers a question (examples/chat.cpp): make chat Q="Why is the sky blue?"
Q ?= What is the capital of France? Answer in one sentence.
chat: build
	cmake -DDEST=$(BUILD_DIR)/models -P cmake/fetch-smollm2.cmake
	$(BUILD_DIR)/examples/chat "$(Q)"

# GRPO on a real model (examples/real_grpo.cpp, about 15 minutes on 2 cores): SmolLM2-135M-Instruct learns
# arithmetic word problems with an answer format; outputs in BUILD_DIR/demo-real. OMP_WAIT_POLICY=passive keeps
# LibTorch's OpenMP threads from busy-waiting when other work shares the cores.
demo-real: build
	cmake -DDEST=$(BUILD_DIR)/models -P cmake/fetch-smollm2.cmake
	OMP_WAIT_POLICY=passive $(BUILD_DIR)/examples/real_grpo --output-dir $(BUILD_DIR)/demo-real

# The whole suite against the LibTorch of the PyPI wheel torch==TORCH_WHEEL_VERSION (CPU), in TORCH_WHEEL_BUILD_DIR.
# The venv is made once and pip runs only when that torch is not importable there; the wheel's LibTorch is found
# through torch.utils.cmake_prefix_path.
test-torch-wheel:
	GRPO_WITH_VENV=1 bash cmake/install-deps.sh
	@test -x $(TORCH_WHEEL_VENV)/bin/pip || $(PYTHON3) -m venv $(TORCH_WHEEL_VENV) || \
	  { echo "test-torch-wheel: '$(PYTHON3) -m venv' failed; on Debian install python3-venv" >&2; exit 1; }
	@$(TORCH_WHEEL_PYTHON) -W ignore -c "import sys, torch; sys.exit(torch.__version__.split('+')[0] != '$(TORCH_WHEEL_VERSION)')" \
	  2>/dev/null || $(TORCH_WHEEL_PYTHON) -m pip install torch==$(TORCH_WHEEL_VERSION)
	prefix=$$($(TORCH_WHEEL_PYTHON) -W ignore -c 'import torch.utils; print(torch.utils.cmake_prefix_path)') && \
	cmake -S . -B $(TORCH_WHEEL_BUILD_DIR) -DCMAKE_BUILD_TYPE=Release -DGRPO_BUILD_TESTS=ON -DGRPO_BUILD_EXAMPLES=ON \
	  "-DCMAKE_PREFIX_PATH=$$prefix" $(CMAKE_ARGS)
	cmake --build $(TORCH_WHEEL_BUILD_DIR) -j $(JOBS)
	-cmake -DDEST=$(TORCH_WHEEL_BUILD_DIR)/models -DREQUIRED=OFF -P cmake/fetch-smollm2.cmake
	cd $(TORCH_WHEEL_BUILD_DIR) && ctest --output-on-failure -j $(JOBS)

# Installs what the benchmarks need (python3-torch for the Python peer too), builds them and runs every one.
# BENCH_THREADS: LibTorch intra-op threads of bench_peer_compare (both sides; default every core).
BENCH_EXECUTABLES = bench_policy_loss bench_policy_loss_o2 bench_lm_head bench_generation bench_grpo_step
bench:
	GRPO_WITH_BENCH=1 bash cmake/install-deps.sh
	cmake -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=Release -DGRPO_BUILD_BENCHMARKS=ON $(CMAKE_ARGS)
	cmake --build $(BUILD_DIR) -j $(JOBS)
	@for b in $(BENCH_EXECUTABLES); do \
	  if [ -x $(BUILD_DIR)/benchmarks/$$b ]; then \
	    echo "== $$b"; \
	    $(BUILD_DIR)/benchmarks/$$b --benchmark_repetitions=3 --benchmark_report_aggregates_only=true || exit 1; \
	  else \
	    echo "== $$b: not built, skipped"; \
	  fi; \
	done
	@echo "== bench_peer_compare"
	$(BUILD_DIR)/benchmarks/bench_peer_compare $(if $(BENCH_THREADS),--threads $(BENCH_THREADS),)
	@echo "== bench_tokenizer (the Python side needs tokenizers: GRPO_TOKENIZERS_PYTHON=<python with it>)"
	$(BUILD_DIR)/benchmarks/bench_tokenizer

# Removes BUILD_DIR (not TORCH_WHEEL_BUILD_DIR).
clean:
	rm -rf $(BUILD_DIR)

# Runs CHECK_CMD (default `make test`) on a clean clone of HEAD in a fresh minimal Debian root (chroot; needs root
# and the Debian mirror). DIST=bookworm|trixie; KEEP=1 keeps the root afterwards. See .ci/check-fresh-debian.sh.
DIST ?= bookworm
check-fresh-debian:
	bash .ci/check-fresh-debian.sh $(DIST) $(if $(KEEP),--keep,) $(if $(CHECK_CMD),--cmd "$(CHECK_CMD)",)

# The C and C++ sources clang-format checks (the fixture tree of the layering test is left as it is).
FORMAT_FILES = $(shell git ls-files '*.hpp' '*.cpp' | grep -v '^tests/layering/upward/')
CLANG_FORMAT ?= clang-format

# Reformats every source file in place with the repository's .clang-format.
format:
	$(CLANG_FORMAT) -i $(FORMAT_FILES)

# Fails when a source file differs from what clang-format would make of it (installs clang-format if missing).
format-check:
	GRPO_WITH_FORMAT=1 bash cmake/install-deps.sh
	$(CLANG_FORMAT) --dry-run -Werror $(FORMAT_FILES)
