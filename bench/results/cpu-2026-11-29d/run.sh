#!/bin/sh
# Re-runs every figure in this directory from the repository root:
#   bench/results/cpu-2026-11-29d/run.sh [llama.cpp source dir]
# Builds the test binaries and stoke, then runs the benchmarks one after
# another (nothing else should run on the machine meanwhile). The 1B
# models are written under ~/.cache/stoke/bench on first use; llama.cpp's
# binaries are those `stoke bench --llama-cpp DIR` builds.
set -eu
out=$(dirname "$0")
llama=${1:-}
bin=$(mktemp -d)
go test -c -o "$bin/engine.test" ./engine/
go test -c -o "$bin/cpu.test" ./kernels/cpu/
go build -o "$bin/stoke" ./cmd/stoke
{ date -u; git rev-parse HEAD; uptime; } >"$out/when.txt"
# packed Q4_0 against the row layout, 1 and 8 inputs, AVX-512 VNNI and AVX2
"$bin/cpu.test" -test.run=NONE -test.bench=MatMulQ4x16 >"$out/matmul-q4x16.txt"
STOKE_NOVNNI=1 "$bin/cpu.test" -test.run=NONE -test.bench=MatMulQ4x16 >"$out/matmul-q4x16-avx2.txt"
# one stream: mapped, in memory, in memory and packed
"$bin/engine.test" -test.run=NONE -test.bench='^BenchmarkDecode$/Q4_0/threads=2' -test.benchtime=40x >"$out/decode.txt"
# continuous batching, three tables
for i in 1 2 3; do
	"$bin/engine.test" -test.run=TestStreamsTable -streams-table -test.v | grep -A5 aggregate
done >"$out/streams.txt"
if [ -n "$llama" ]; then
	for t in Q4_0 Q8_0; do
		"$bin/stoke" bench -m ~/.cache/stoke/bench/llama-1000000000-$t-seed1.gguf --llama-cpp "$llama" --threads 1,2 -r 5 >"$out/llama-$(echo $t | tr A-Z a-z).txt" 2>&1
	done
	m=$HOME/.cache/stoke/bench/llama-1000000000-Q4_0-seed1.gguf
	for i in 1 2; do
		echo "== llama-batched-bench, run $i"
		LD_LIBRARY_PATH="$llama/build-stoke/bin" "$llama/build-stoke/bin/llama-batched-bench" -m "$m" -c 1024 -b 256 -ub 256 \
			-npp 2 -ntg 16 -npl 1,4,8,16 -t 2 -lm none 2>&1 | grep '^|'
		echo "== stoke TestStreamsTable, run $i"
		"$bin/engine.test" -test.run=TestStreamsTable -streams-table -test.v | grep 'streams='
	done >"$out/batched.txt"
fi
uptime >>"$out/when.txt"
rm -rf "$bin"
