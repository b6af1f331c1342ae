#!/usr/bin/env bash
# BenchmarkSparseDecode's sparse runs (the planted 1B ReLU Q4_0 model in
# PowerInfer's layout with its F16 predictor, 2 threads, 128 tokens) with
# test binaries of 6d4631b (the predictor's FC2 read row by row) and of
# this tree (rank-major), alternating five times. Writes ab-decode.txt.
#
#	bench/results/cpu-2026-11-29h/ab-decode.sh
set -euo pipefail
cd "$(dirname "$0")/../../.."
out=$PWD/bench/results/cpu-2026-11-29h/ab-decode.txt
tmp=$(mktemp -d)
git worktree add -q "$tmp/wt" 6d4631b
(cd "$tmp/wt" && go test -c -o "$tmp/base.test" ./engine)
git worktree remove --force "$tmp/wt"
go test -c -o "$tmp/new.test" ./engine
cd engine
: > "$out"
for round in 1 2 3 4 5; do
	for b in base new; do
		echo "round $round $b" >> "$out"
		"$tmp/$b.test" -test.run '^$' -test.bench 'SparseDecode/sparse/no-mmap' -test.benchtime 128x | grep '^Benchmark' >> "$out"
	done
done
rm -rf "$tmp"
cat "$out"
