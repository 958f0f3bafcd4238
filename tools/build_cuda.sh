#!/usr/bin/env bash
# Builds the `cuda` binary on a machine WITHOUT a GPU or CUDA toolkit (what this project's
# development machines are), for a GPU machine with driver 580 / CUDA 13.0 and an H100/H200
# (compute capability 9.0). Not needed by CI or users with a CUDA toolkit: they run
# `cargo build --release --features cuda` directly.
#
#   tools/build_cuda.sh [TARGET_DIR]     -> $TARGET_DIR/release/sketch2medi (default target-cuda)
#
# What it does (see docs/BENCHMARKS.md, "CUDA"):
# 1. a virtualenv with NVIDIA's PyPI wheels of CUDA 13.0 (nvcc, nvvm and crt pinned to 13.0:
#    newer nvvm writes PTX 9.5, which 13.0's ptxas and the 580 driver refuse);
# 2. CUDARC_CUDA_VERSION=13000 (cudarc 0.19 rejects 13.5 but accepts 13.0) and
#    CUDA_COMPUTE_CAP=90 (there is no nvidia-smi to ask);
# 3. link-time libraries: unversioned links to the wheels' libcublas/libcublasLt/libcudart/
#    libnvrtc/libcurand, and a stub libcuda.so (soname libcuda.so.1) defining every driver
#    symbol cudarc declares, so that the binary links; at run time the driver's real
#    libcuda.so.1 and the GPU machine's CUDA 13 libraries (LD_LIBRARY_PATH) are used.
set -euo pipefail
TARGET=${1:-target-cuda}
VENV=${CUDA_VENV:-/tmp/s2m-cuda-venv}
LINK=${CUDA_LINK_DIR:-/tmp/s2m-cuda-link}
if [ ! -x "$VENV/bin/nvcc" ] && [ ! -d "$VENV/lib" ]; then
  python3 -m venv "$VENV"
fi
"$VENV/bin/pip" install -q "nvidia-cuda-nvcc==13.0.*" "nvidia-cuda-runtime==13.0.*" \
  "nvidia-cuda-cccl==13.0.*" "nvidia-cublas==13.0.*" "nvidia-curand" \
  "nvidia-cuda-nvrtc==13.0.*" "nvidia-nvvm==13.0.*" "nvidia-cuda-crt==13.0.*"
N=$(echo "$VENV"/lib/python3*/site-packages/nvidia/cu13)
mkdir -p "$LINK"
CUDARC=$(ls -d "$HOME"/.cargo/registry/src/*/cudarc-0.19.* | tail -1)
grep -oP "^\s+fn \Kcu[A-Za-z0-9_]+(?=\()" "$CUDARC/src/driver/sys/mod.rs" | sort -u \
  | awk '{print "void " $1 "(void){}"}' > "$LINK/stub.c"
gcc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$LINK/libcuda.so" "$LINK/stub.c"
for n in cublas cublasLt cudart nvrtc; do ln -sf "$N/lib/lib$n.so.13" "$LINK/lib$n.so"; done
ln -sf "$N/lib/libcurand.so.10" "$LINK/libcurand.so"
export PATH="$N/bin:$PATH" CUDA_ROOT="$N" CUDA_PATH="$N" CUDA_HOME="$N"
export CUDARC_CUDA_VERSION=13000 CUDA_COMPUTE_CAP=90
export RUSTFLAGS="-L $LINK" CARGO_TARGET_DIR="$TARGET"
cargo build --release --features cuda --bin sketch2medi
echo "built $TARGET/release/sketch2medi; on the GPU machine set LD_LIBRARY_PATH to its CUDA 13 libraries"
