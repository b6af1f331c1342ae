#!/bin/sh
# The Q5_K addendum (6cc8ccc): packed Q5_K against the row layout, and
# the 1B model in llama.cpp's Q5_K_M mix against llama.cpp. From the
# repository root: bench/results/cpu-2026-11-29e/run-q5k.sh [llama.cpp dir]
set -eu
out=$(dirname "$0")
llama=${1:-}
bin=$(mktemp -d)
go test -c -o "$bin/engine.test" ./engine/
go test -c -o "$bin/cpu.test" ./kernels/cpu/
go build -o "$bin/stoke" ./cmd/stoke
{ date -u; git rev-parse HEAD; uptime; } >"$out/when-q5k.txt"
"$bin/cpu.test" -test.run=NONE -test.bench=MatMulQ5Kx16 -test.benchtime=30x >"$out/matmul-Q5Kx16.txt"
STOKE_NOVNNI=1 "$bin/cpu.test" -test.run=NONE -test.bench=MatMulQ5Kx16 -test.benchtime=30x >"$out/matmul-Q5Kx16-avx2.txt"
"$bin/engine.test" -test.run=NONE -test.bench=SchedulerStreamsQ4K/Q5_K_M -test.benchtime=10x >"$out/streams-q5k.txt"
if [ -n "$llama" ]; then
	m=$HOME/.cache/stoke/bench/llama-q5_k_m-1000000000-Q5_K-seed1.gguf
	"$bin/stoke" bench -m "$m" --llama-cpp "$llama" --threads 1,2 -r 5 >"$out/llama-q5_k_m.txt" 2>&1
	for i in 1 2; do
		echo "== llama-batched-bench, run $i"
		LD_LIBRARY_PATH="$llama/build-stoke/bin" "$llama/build-stoke/bin/llama-batched-bench" -m "$m" -c 1024 -b 256 -ub 256 \
			-npp 2 -ntg 16 -npl 1,4,8,16 -t 2 -lm none 2>&1 | grep '^|'
		echo "== stoke BenchmarkSchedulerStreamsQ4K/Q5_K_M, run $i"
		"$bin/engine.test" -test.run=NONE -test.bench='SchedulerStreamsQ4K/Q5_K_M/packed=true' -test.benchtime=10x | grep tok/s
	done >"$out/batched-q5k.txt"
fi
uptime >>"$out/when-q5k.txt"
rm -rf "$bin"
