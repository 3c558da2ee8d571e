#!/usr/bin/env bash
# Installs the Debian packages grpo-cpp needs, only those missing. Idempotent.
# Runs apt-get as root, or through sudo when present; otherwise prints the command and fails.
set -euo pipefail

packages=(
  build-essential cmake make pkg-config ca-certificates
  libtorch-dev libgloo-dev libopenblas0-pthread
  libeigen3-dev nlohmann-json3-dev libpcre2-dev catch2 libbenchmark-dev
  python3  # the code-execution reward's tests run Python programs in its sandbox (tests/core/code_execution_test.cpp)
)
# Optional group for `make bench`: GRPO_WITH_BENCH=1 adds Debian's PyTorch, which the Python peer of the
# benchmarks (benchmarks/peer/peer.py, run with /usr/bin/python3) needs.
if [ "${GRPO_WITH_BENCH:-0}" = "1" ]; then
  packages+=(python3-torch)
fi
# Optional group for `make format-check`: GRPO_WITH_FORMAT=1 adds clang-format.
if [ "${GRPO_WITH_FORMAT:-0}" = "1" ]; then
  packages+=(clang-format)
fi
# Optional group for `make test-torch-wheel`: GRPO_WITH_VENV=1 adds what `python3 -m venv` needs on Debian.
if [ "${GRPO_WITH_VENV:-0}" = "1" ]; then
  packages+=(python3 python3-venv)
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all packages present"
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
if [ "$(id -u)" -eq 0 ]; then
  sudo_cmd=()
elif command -v sudo >/dev/null 2>&1; then
  sudo_cmd=(sudo)
else
  echo "install-deps: need root to install packages; run as root:" >&2
  echo "  apt-get update && apt-get install -y --no-install-recommends ${missing[*]}" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
