#!/bin/sh
# devrun.sh: the CUDA checks for a machine with an NVIDIA GPU and no Go.
#
# Build the test binary where Go is (no cgo; the PTX is embedded):
#
#	CGO_ENABLED=0 go test -c -o kernels/cuda/cuda.test ./kernels/cuda
#
# then, on the GPU machine, from the repository root (or anywhere):
#
#	sh kernels/cuda/devrun.sh [path/to/cuda.test [path/to/engine.test [path/to/stoke]]]
#
# With an engine test binary (CGO_ENABLED=0 go test -c -o engine.test
# ./engine), it also runs the engine's GPU tests (TestHybridOnGPU,
# TestDevicePredictorOnGPU, TestOffloadSparseBatchOnGPU: the hybrid FFN
# and the device predictor against the CPU, batched decode steps against
# lone ones) into $OUT/engine-gpu-tests.txt.
#
# With a stoke binary (CGO_ENABLED=0 go build -o stoke ./cmd/stoke), it
# ends with the end-to-end figures: it writes a planted ReLU Q4_0 model
# in PowerInfer's layout of PARAMS parameters (default 1B) with stoke
# synth, and runs stoke bench sweep on it with --device DEVICE (default
# cuda): the CPU alone, layer split and hybrid at VRAM of 0, 25%, 50% and
# 100% of the weights, pp64 and tg32, into $OUT/sweep (summary.md,
# sweep.csv, sweep.json, the plot).
#
# It runs, with STOKE_GPU=1: the GPU op suite (every op against the CPU
# backend), then the benchmarks (read bandwidth, dense and gathered GEMV
# per weight type, 8-input MatMul, AxpyRows, decode attention). The full
# outputs go to $OUT/cuda-tests.txt and $OUT/cuda-bench.txt ($OUT, or a
# temporary directory); a summary to stdout. BENCHTIME (default 200x) sets -test.benchtime;
# BENCH (default .) selects benchmarks. The exit status is the suite's.
set -u
here=$(cd "$(dirname "$0")" && pwd)
bin=${1:-$here/cuda.test}
bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")
if [ ! -x "$bin" ]; then
	echo "devrun.sh: no test binary at $bin (build it with: CGO_ENABLED=0 go test -c -o kernels/cuda/cuda.test ./kernels/cuda)" >&2
	exit 2
fi
eng=
if [ $# -ge 2 ] && [ -n "$2" ]; then # resolved before the cd below
	eng=$(cd "$(dirname "$2")" && pwd)/$(basename "$2")
fi
stoke=
if [ $# -ge 3 ] && [ -n "$3" ]; then
	stoke=$(cd "$(dirname "$3")" && pwd)/$(basename "$3")
fi
out=${OUT:-$(mktemp -d)}
cd "$here" # the emulator tests look for the sources here
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total,memory.used --format=csv

echo "== GPU suite"
STOKE_GPU=1 "$bin" -test.count=1 -test.timeout=15m -test.v \
	-test.run 'TestGPU|TestOpen|TestPTX|TestChoosePTX' >"$out/cuda-tests.txt" 2>&1
status=$?
grep -E '^(=== RUN|---|PASS|FAIL|ok)|_test.go' "$out/cuda-tests.txt" | grep -v '=== RUN' | tail -n 200

if [ -n "$eng" ]; then
	echo "== engine GPU tests"
	STOKE_GPU=1 "$eng" -test.count=1 -test.timeout=10m -test.v -test.run 'OnGPU' >"$out/engine-gpu-tests.txt" 2>&1
	estatus=$?
	grep -E '^(---|PASS|FAIL|ok)|_test.go' "$out/engine-gpu-tests.txt" | tail -n 50
	[ "$estatus" -ne 0 ] && status=$estatus
fi

echo "== benchmarks"
STOKE_GPU=1 "$bin" -test.run '^$' -test.bench "${BENCH:-.}" -test.benchtime "${BENCHTIME:-200x}" \
	-test.timeout=20m 2>&1 | tee "$out/cuda-bench.txt"

if [ -n "$stoke" ]; then
	echo "== end to end: stoke bench sweep on a planted ${PARAMS:-1B} model"
	if "$stoke" synth --arch llama --powerinfer --dtype q4_0 --params "${PARAMS:-1B}" --out "$out/relu-powerinfer-q4_0.gguf" >"$out/synth.txt" 2>&1 &&
		"$stoke" bench sweep -m "$out/relu-powerinfer-q4_0.gguf" --device "${DEVICE:-cuda}" --modes cpu,layer-split,hybrid \
			--vram 0,25%,50%,100% --prompt-len 64 --gen-len 32 --repeat 2 --out "$out/sweep" >"$out/sweep.txt" 2>&1; then
		cat "$out/sweep/summary.md"
	else
		echo "devrun.sh: the end-to-end run failed:" >&2
		tail -n 20 "$out/synth.txt" "$out/sweep.txt" >&2
		status=1
	fi
fi
echo "(full output in $out)"
exit "$status"
