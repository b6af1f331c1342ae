#!/bin/sh
# Before and after, alternating: BenchmarkSchedulerStreams at 1 and 8
# streams, built at the commit before this work (456a334) and at HEAD,
# three rounds (run from the repository root):
#   bench/results/cpu-2026-11-29d/ab.sh
set -eu
bin=$(mktemp -d)
git worktree add -q "$bin/old" 456a334
(cd "$bin/old" && go test -c -o "$bin/old.test" ./engine/)
git worktree remove --force "$bin/old"
go test -c -o "$bin/new.test" ./engine/
for i in 1 2 3; do
	for b in old new; do
		echo "== $b, round $i"
		"$bin/$b.test" -test.run=NONE -test.bench='SchedulerStreams/streams=(1|8)$' -test.benchtime=20x | grep tok/s
	done
done
rm -rf "$bin"
