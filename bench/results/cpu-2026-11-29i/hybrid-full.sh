#!/usr/bin/env bash
# hybrid-prefill.sh at budgets of 0 and 120% only (at 120% the plan holds
# every neuron: prompt tokens go through the executor, now all of a
# pass's at once, Executor.RunAll), three alternating rounds of builds of
# 52cd695 and of this tree. Writes hybrid-full.txt here.
#
#	bench/results/cpu-2026-11-29i/hybrid-full.sh
set -euo pipefail
cd "$(dirname "$0")/../../.."
out=bench/results/cpu-2026-11-29i/hybrid-full.txt
m=${XDG_CACHE_HOME:-$HOME/.cache}/stoke/bench/relu-powerinfer-1000000000-Q4_0-seed1.gguf
tmp=$(mktemp -d)
git worktree add -q "$tmp/wt" 52cd695
(cd "$tmp/wt" && go build -o "$tmp/stoke.old" ./cmd/stoke)
git worktree remove --force "$tmp/wt"
go build -o "$tmp/stoke.new" ./cmd/stoke
: > "$out"
for round in 1 2 3; do
	for v in old new; do
		"$tmp/stoke.$v" bench sweep -m "$m" --device cpu-capped --modes hybrid --vram 0,120% \
			--prompt-len 64 --gen-len 16 --repeat 3 --out "$tmp/sweep-$v" >/dev/null 2>&1
		echo "$round $v $(grep '^| hybrid' "$tmp/sweep-$v/summary.md" | awk -F'|' '{printf "%s: pp %s tg %s; ", $3, $9, $10}')" >>"$out"
	done
done
rm -rf "$tmp"
