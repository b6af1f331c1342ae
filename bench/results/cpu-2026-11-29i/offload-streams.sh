#!/usr/bin/env bash
# BenchmarkOffloadStreams (a hybrid plan of 400 MiB on the byte-capped CPU
# backend, --parallel 4, 1 and 4 clients, dense and sparse) with test
# binaries of 52cd695 (a batched pass ran every neuron of the hybrid FFN)
# and of this tree (each decode step its own predicted neurons), three
# alternating rounds, on the planted 1B ReLU Q4_0 model in PowerInfer's
# layout (written to the user cache on first use). The benchmark file is
# this tree's in both builds. Writes offload-streams.txt here (the runs
# kept: offload-streams-1.txt at 77ee616, offload-streams-2.txt at
# b9e272a, a busier hour).
#
#	bench/results/cpu-2026-11-29i/offload-streams.sh
set -euo pipefail
cd "$(dirname "$0")/../../.."
out=bench/results/cpu-2026-11-29i/offload-streams.txt
tmp=$(mktemp -d)
git worktree add -q "$tmp/wt" 52cd695
cp engine/bench_test.go "$tmp/wt/engine/"
(cd "$tmp/wt" && go test -c -o "$tmp/old.test" ./engine)
git worktree remove --force "$tmp/wt"
go test -c -o "$tmp/new.test" ./engine
: > "$out"
for round in 1 2 3; do
	for v in old new; do
		(cd engine && "$tmp/$v.test" -test.run '^$' -test.bench OffloadStreams -test.benchtime 4x) |
			awk -v r="$round" -v v="$v" '/tok\/s/ {print "round " r " " v " " $1 " " $(NF-1) " tok/s"}' >>"$out"
	done
done
rm -rf "$tmp"
