#!/usr/bin/env bash
# Installs every system package the build and the tests need (Debian/Ubuntu, apt).
# Idempotent: when everything is present it does nothing and prints one line.
set -euo pipefail

packages=(
  build-essential cmake pkg-config
  libhdf5-dev libopenblas-openmp-dev libjpeg62-turbo-dev libstb-dev
  libcli11-dev nlohmann-json3-dev libssl-dev
  # musiq serve (HTTP/1.1) and WebDataset tar shards as input; curl, a client in its tests
  libcpp-httplib-dev libarchive-dev curl
  libgtest-dev libgmock-dev libbenchmark-dev
  python3 python3-numpy python3-h5py python3-pil
  # venvs: .ci/hidden-dist-packages (numpy, h5py, Pillow from PyPI) and the Python package's
  # tests (pip install . builds the extension: Python headers)
  python3-venv python3-dev
  # fuzz/run-fuzzers: clang with libFuzzer and the sanitizer runtimes, LLVM's OpenMP
  # (clang's -fopenmp), llvm-symbolizer for readable stacks
  clang libclang-rt-14-dev libomp-14-dev llvm
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#packages[@]} packages present"
  exit 0
fi

sudo_cmd=()
[ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "setup: done"
