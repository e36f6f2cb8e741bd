#!/usr/bin/env bash
# Installs rdino's dependencies from Debian 12 packages. Idempotent.
#   scripts/install-deps.sh              build + test dependencies
#   scripts/install-deps.sh --bench      also the benchmark peers (PyTorch, Pillow)
#   scripts/install-deps.sh --if-missing install only when something is missing (make test/demo)
set -euo pipefail

BUILD_PKGS=(build-essential pkg-config openmpi-bin libopenmpi-dev libhdf5-openmpi-dev hdf5-tools
            libopenblas-dev liblapacke-dev libpng-dev libyaml-dev libjansson-dev libisal-dev gnuplot-nox)
# slurm-wlm + munge: the tests that start a throwaway Slurm cluster (tests/slurm/cluster.sh runs
# its own private daemons; Debian also enables the system services, which rdino does not need)
# clang + libclang-rt-dev (libFuzzer, ASan, UBSan) + libomp-dev (clang's OpenMP): `make fuzz`
TEST_PKGS=(python3 python3-numpy python3-h5py python3-pil python3-sklearn cppcheck clang-format
           slurm-wlm munge clang libclang-rt-dev libomp-dev)
BENCH_PKGS=(python3-torch python3-pil)

want=("${BUILD_PKGS[@]}" "${TEST_PKGS[@]}")
for arg in "$@"; do
    case "$arg" in
        --bench) want+=("${BENCH_PKGS[@]}") ;;
        --if-missing) ;;
        *) echo "usage: $0 [--bench] [--if-missing]" >&2; exit 2 ;;
    esac
done

missing=()
for pkg in "${want[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$pkg")
    fi
done
if [ "${#missing[@]}" -eq 0 ]; then
    exit 0
fi

echo "install-deps: installing ${missing[*]}"
if [ "$(id -u)" -eq 0 ]; then
    SUDO=()
elif command -v sudo >/dev/null; then
    SUDO=(sudo)
else
    echo "install-deps: need root to run: apt-get install ${missing[*]}" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -qq
"${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
