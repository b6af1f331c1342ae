#!/bin/sh
# Continuous batching against llama.cpp's batched decoding, in turn, twice
# (run from the repository root; llama.cpp's source dir as the argument,
# built by `stoke bench --llama-cpp DIR`, which this builds on):
#   bench/results/cpu-2026-11-29c/batched.sh /tmp/llama.cpp
# Both read the 1B Q4_0 model into memory and decode on 2 threads, 16
# tokens per sequence after a 2-token prompt, with 1, 4, 8 and 16
# sequences: Stoke's TestStreamsTable (its scheduler, each stream a
# client) and llama-batched-bench (-npp 2 -ntg 16; S_TG is its aggregate
# decode rate).
set -eu
llama=$1
m=$HOME/.cache/stoke/bench/llama-1000000000-Q4_0-seed1.gguf
bin=$(mktemp -d)
go test -c -o "$bin/engine.test" ./engine/
cmake --build "$llama/build-stoke" --target llama-batched-bench -j2 >/dev/null
for i in 1 2; do
	echo "== llama-batched-bench, run $i"
	LD_LIBRARY_PATH="$llama/build-stoke/bin" "$llama/build-stoke/bin/llama-batched-bench" -m "$m" -c 1024 -b 256 -ub 256 \
		-npp 2 -ntg 16 -npl 1,4,8,16 -t 2 -lm none 2>&1 | grep '^|'
	echo "== stoke TestStreamsTable, run $i"
	"$bin/engine.test" -test.run=TestStreamsTable -streams-table -test.v | grep 'streams='
done
rm -rf "$bin"
