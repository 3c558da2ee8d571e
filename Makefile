# Quick start: `make demo` and `make test` install missing Debian packages, configure, build and run.
BUILD_DIR ?= build
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
CMAKE_ARGS ?=

.PHONY: all deps configure build demo test bench clean

all: build

deps:
	bash cmake/install-deps.sh

configure: deps
	cmake -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=Release -DGRPO_BUILD_TESTS=ON -DGRPO_BUILD_EXAMPLES=ON $(CMAKE_ARGS)

build: configure
	cmake --build $(BUILD_DIR) -j $(JOBS)

demo: build
	$(BUILD_DIR)/examples/arithmetic_grpo --output-dir $(BUILD_DIR)/demo

test: build
	cd $(BUILD_DIR) && ctest --output-on-failure -j $(JOBS)

# Installs what the benchmarks need (python3-torch for the Python peer too), builds them and runs every one.
# BENCH_THREADS: LibTorch intra-op threads of bench_peer_compare (both sides; default every core).
BENCH_EXECUTABLES = bench_policy_loss bench_lm_head bench_generation bench_grpo_step
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

clean:
	rm -rf $(BUILD_DIR)
