#!/bin/sh
# Re-runs every figure in this directory from the repository root:
#   bench/results/cpu-2026-11-29c/run.sh [llama.cpp source dir]
# Builds the test binaries and stoke, then runs the benchmarks one after
# another (nothing else should run on the machine meanwhile). The 1B
# models are written under ~/.cache/stoke/bench on first use.
set -eu
out=$(dirname "$0")
llama=${1:-}
bin=$(mktemp -d)
go test -c -o "$bin/engine.test" ./engine/
go test -c -o "$bin/cpu.test" ./kernels/cpu/
go build -o "$bin/stoke" ./cmd/stoke
{ date -u; git rev-parse HEAD; uptime; } >"$out/when.txt"
# mapped against in memory (huge pages), dense and sparse: three runs
for i in 1 2 3; do
	"$bin/engine.test" -test.run=NONE -test.bench=SparseDecode -test.benchtime=64x
done >"$out/sparse-decode.txt"
"$bin/engine.test" -test.run=NONE -test.bench='^BenchmarkDecode$/Q/threads=2' -test.benchtime=40x >"$out/decode.txt"
"$bin/engine.test" -test.run=TestStreamsTable -streams-table -test.v >"$out/streams.txt"
"$bin/cpu.test" -test.run=TestSparseFFNTable -sparse-table -test.v >"$out/sparse.txt"
if [ -n "$llama" ]; then
	for t in Q4_0 Q8_0; do
		"$bin/stoke" bench -m ~/.cache/stoke/bench/llama-1000000000-$t-seed1.gguf --llama-cpp "$llama" --threads 1,2 -r 5 >"$out/llama-$(echo $t | tr A-Z a-z).txt" 2>&1
	done
fi
uptime >>"$out/when.txt"
rm -rf "$bin"
