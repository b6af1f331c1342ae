#!/bin/sh
# Sparse decode against llama.cpp's dense decode on the same planted 1B
# ReLU Q4_0 model, from the repository root:
#   bench/results/cpu-2026-11-29g/run-llama.sh /path/to/llama.cpp
# llama.cpp cannot read PowerInfer's layout (magic PWRI), so it runs the
# model written in the standard layout (same seed: the same gate, up and
# down weights, down quantized along the other axis; llama.cpp's llama
# applies SiLU where the file asks for ReLU, which costs the same). Stoke
# runs the standard file dense, and the PowerInfer-layout file (and its
# copy renumbered hot first, which BenchmarkSparseDecode writes) with the
# sparse FFN and the file's predictor. Twice, alternating.
set -eu
out=$(dirname "$0")
llama=$1
bin=$(mktemp -d)
go build -o "$bin/stoke" ./cmd/stoke
c=$HOME/.cache/stoke/bench
std=$c/relu-1000000000-Q4_0-seed1.gguf
pwri=$c/relu-powerinfer-1000000000-Q4_0-seed1.gguf
[ -f "$std" ] || "$bin/stoke" synth --out "$std" --params 1B --dtype q4_0 --relu --seed 1
[ -f "$pwri" ] || "$bin/stoke" synth --out "$pwri" --params 1B --dtype q4_0 --relu --powerinfer --seed 1
for i in 1 2; do
	echo "== run $i: standard layout, dense, Stoke and llama.cpp"
	"$bin/stoke" bench -m "$std" --llama-cpp "$llama" -p 0 -n 64 -r 3 --threads 2 2>/dev/null
	echo "== run $i: PowerInfer layout, sparse"
	"$bin/stoke" bench -m "$pwri" --sparse -p 0 -n 64 -r 3 --threads 2 2>/dev/null
	if [ -f "${pwri%.gguf}-hot.gguf" ]; then
		echo "== run $i: PowerInfer layout renumbered hot first, sparse"
		"$bin/stoke" bench -m "${pwri%.gguf}-hot.gguf" --sparse -p 0 -n 64 -r 3 --threads 2 2>/dev/null
	fi
done >"$out/llama-sparse.txt"
