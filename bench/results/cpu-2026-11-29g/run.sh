#!/bin/sh
# Re-runs every figure in this directory from the repository root:
#   bench/results/cpu-2026-11-29g/run.sh
# The 7B-layer sparse FFN table, every timed product starting with cold
# caches (coldCaches), whose "hot-first" column draws active sets by a
# 1/rank law over neurons numbered hot first, three times; and decode of the synthetic 1B
# ReLU Q4_0 model in PowerInfer's layout against its copy renumbered by a
# 512-token profile (written once beside it under ~/.cache/stoke/bench).
# Builds the test binaries first, then runs one benchmark after another
# (nothing else should run on the machine meanwhile).
set -eu
out=$(dirname "$0")
bin=$(mktemp -d)
go test -c -o "$bin/engine.test" ./engine/
go test -c -o "$bin/cpu.test" ./kernels/cpu/
{ date -u; git rev-parse HEAD; uptime; } >"$out/when.txt"
for i in 1 2 3; do
	"$bin/cpu.test" -test.run=TestSparseFFNTable -sparse-table -test.v >"$out/sparse-table-$i.txt"
done
"$bin/engine.test" -test.run=NONE -test.bench='SparseDecode/sparse/no-mmap' -test.benchtime=128x -test.count=6 >"$out/sparse-decode.txt"
uptime >>"$out/when.txt"
