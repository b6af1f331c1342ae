#!/usr/bin/env bash
# stoke bench sweep --modes hybrid on the byte-capped CPU backend (the
# stand-in for a device: it computes its half on the same two cores), at
# budgets of 0, 25%, 50%, 90% and 120% of the weights, pp64 and tg16, with
# builds of 52cd695 (prompt tokens through the hybrid executor one by
# one) and of this tree (prompt tokens of a layer with 20% or more of its
# neurons on the host on the CPU's dense FFN), two alternating rounds, on
# the planted 1B ReLU Q4_0 model in PowerInfer's layout (see
# ../cpu-2026-11-29h/run.sh). Writes hybrid-prefill.txt here.
#
#	bench/results/cpu-2026-11-29i/hybrid-prefill.sh
set -euo pipefail
cd "$(dirname "$0")/../../.."
out=bench/results/cpu-2026-11-29i/hybrid-prefill.txt
m=${XDG_CACHE_HOME:-$HOME/.cache}/stoke/bench/relu-powerinfer-1000000000-Q4_0-seed1.gguf
tmp=$(mktemp -d)
git worktree add -q "$tmp/wt" 52cd695
(cd "$tmp/wt" && go build -o "$tmp/stoke.old" ./cmd/stoke)
git worktree remove --force "$tmp/wt"
go build -o "$tmp/stoke.new" ./cmd/stoke
: > "$out"
for round in 1 2; do
	for v in old new; do
		"$tmp/stoke.$v" bench sweep -m "$m" --device cpu-capped --modes hybrid --vram 0,25%,50%,90%,120% \
			--prompt-len 64 --gen-len 16 --repeat 3 --out "$tmp/sweep-$v" >/dev/null 2>&1
		echo "round $round $v (mode | vram | budget | status | plan | hot share | hit rate | pp tok/s | tg tok/s | ± sd | roofline tg)" >>"$out"
		grep '^| hybrid' "$tmp/sweep-$v/summary.md" >>"$out"
	done
done
rm -rf "$tmp"
