#!/bin/sh
# Regenerates the embedded PTX from kernels.cu: `go generate ./kernels/cuda`.
#
# The committed PTX is made by nvcc 11.8 (Debian bookworm's
# nvidia-cuda-toolkit, see DEVELOPERS.md): its PTX ISA 7.8 sets the oldest
# driver that can load it (520.61.05). Another nvcc would change both the
# bytes and that minimum, so gen.sh refuses it unless STOKE_ANY_NVCC=1.
# The output depends only on the sources and the nvcc version: CI
# regenerates it and fails on any difference (.ci/ptx).
set -eu
cd "$(dirname "$0")"
NVCC=${NVCC:-nvcc}
ver=$("$NVCC" --version | sed -n 's/.*release \([0-9][0-9.]*\),.*/\1/p')
if [ "$ver" != "11.8" ] && [ -z "${STOKE_ANY_NVCC:-}" ]; then
	echo "gen.sh: $NVCC is CUDA $ver; the committed PTX is made by nvcc 11.8 (set STOKE_ANY_NVCC=1 to use it anyway)" >&2
	exit 1
fi
mkdir -p ptx
for arch in 52 80; do
	"$NVCC" -ptx -std=c++14 -arch=compute_$arch -o ptx/kernels_$arch.ptx.tmp kernels.cu
	mv ptx/kernels_$arch.ptx.tmp ptx/kernels_$arch.ptx
done
