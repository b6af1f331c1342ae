#!/bin/sh
# Re-runs every figure in this directory from the repository root:
#   bench/results/cpu-2026-11-29b/run.sh [llama.cpp source dir]
# Builds the test binaries and stoke, then runs the benchmarks one after
# another (nothing else should run on the machine meanwhile). The 1B
# models are written under ~/.cache/stoke/bench by BenchmarkDecode on
# first use.
set -eu
out=$(dirname "$0")
llama=${1:-}
bin=$(mktemp -d)
go test -c -o "$bin/cpu.test" ./kernels/cpu/
go test -c -o "$bin/engine.test" ./engine/
go build -o "$bin/stoke" ./cmd/stoke
{ date -u; git rev-parse HEAD; uptime; } >"$out/when.txt"
"$bin/engine.test" -test.run=NONE -test.bench='Decode|Prefill' -test.benchtime=20x -test.benchmem >"$out/engine.txt"
"$bin/cpu.test" -test.run=NONE -test.bench='ReadBandwidth$|Roofline' -test.benchtime=5x >"$out/roofline.txt"
"$bin/cpu.test" -test.run=NONE -test.bench=MatMulDRAM -test.benchtime=30x >"$out/matmul-dram.txt"
"$bin/engine.test" -test.run=TestStreamsTable -streams-table -test.v >"$out/streams.txt"
"$bin/cpu.test" -test.run=TestSparseFFNTable -sparse-table -test.v >"$out/sparse.txt"
if [ -n "$llama" ]; then
	for t in Q4_0 Q8_0; do
		"$bin/stoke" bench -m ~/.cache/stoke/bench/llama-1000000000-$t-seed1.gguf --llama-cpp "$llama" --threads 1,2 -r 5 >"$out/llama-$(echo $t | tr A-Z a-z).txt" 2>&1
	done
fi
uptime >>"$out/when.txt"
rm -rf "$bin"
