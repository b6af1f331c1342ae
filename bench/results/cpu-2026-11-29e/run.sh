#!/bin/sh
# Re-runs every figure in this directory from the repository root:
#   bench/results/cpu-2026-11-29e/run.sh [llama.cpp source dir]
# The packed K-quant layouts (Q4_K, Q6_K) against the row layout, and the
# 1B model in llama.cpp's Q4_K_M mix against llama.cpp. Builds the test
# binaries and stoke, then runs the benchmarks one after another (nothing
# else should run on the machine meanwhile). The 1B models are written
# under ~/.cache/stoke/bench on first use; llama.cpp's binaries are those
# `stoke bench --llama-cpp DIR` builds.
set -eu
out=$(dirname "$0")
llama=${1:-}
bin=$(mktemp -d)
go test -c -o "$bin/engine.test" ./engine/
go test -c -o "$bin/cpu.test" ./kernels/cpu/
go build -o "$bin/stoke" ./cmd/stoke
{ date -u; git rev-parse HEAD; uptime; } >"$out/when.txt"
# packed Q4_K and Q6_K against the row layout, 1 and 8 inputs, AVX-512 VNNI and AVX2
for t in Q4Kx16 Q6Kx16; do
	"$bin/cpu.test" -test.run=NONE -test.bench="MatMul$t" -test.benchtime=30x >"$out/matmul-$t.txt"
	STOKE_NOVNNI=1 "$bin/cpu.test" -test.run=NONE -test.bench="MatMul$t" -test.benchtime=30x >"$out/matmul-$t-avx2.txt"
done
# continuous batching, 1 and 8 streams, rows and packed: Q4_K and Q4_K_M, twice
for i in 1 2; do
	"$bin/engine.test" -test.run=NONE -test.bench=SchedulerStreamsQ4K -test.benchtime=10x
done >"$out/streams-q4k.txt"
# the 7B-layer sparse FFN table (issue 4), with the packed dense FFN
"$bin/cpu.test" -test.run=TestSparseFFNTable -sparse-table -test.v >"$out/sparse-table.txt"
if [ -n "$llama" ]; then
	m=$HOME/.cache/stoke/bench/llama-q4_k_m-1000000000-Q4_K-seed1.gguf
	"$bin/stoke" bench -m "$m" --llama-cpp "$llama" --threads 1,2 -r 5 >"$out/llama-q4_k_m.txt" 2>&1
	for i in 1 2; do
		echo "== llama-batched-bench, run $i"
		LD_LIBRARY_PATH="$llama/build-stoke/bin" "$llama/build-stoke/bin/llama-batched-bench" -m "$m" -c 1024 -b 256 -ub 256 \
			-npp 2 -ntg 16 -npl 1,4,8,16 -t 2 -lm none 2>&1 | grep '^|'
		echo "== stoke BenchmarkSchedulerStreamsQ4K/Q4_K_M, run $i"
		"$bin/engine.test" -test.run=NONE -test.bench='SchedulerStreamsQ4K/Q4_K_M/packed=true' -test.benchtime=10x | grep tok/s
	done >"$out/batched.txt"
fi
uptime >>"$out/when.txt"
rm -rf "$bin"
