#!/usr/bin/env bash
# stoke plan, hybrid, 400 MiB, on the planted 1B ReLU Q4_0 model in
# PowerInfer's layout (see run.sh) with a 1,024-token profile of
# ../shared/models/texts/tinystories_sample.txt: a build of 0371ef5, whose
# plans reserved VRAM for the predictor's weights, against this tree,
# which leaves the predictor on the host. Writes plan.txt here.
#
#	bench/results/cpu-2026-11-29h/plan.sh
set -euo pipefail
cd "$(dirname "$0")/../../.."
out=bench/results/cpu-2026-11-29h/plan.txt
m=${XDG_CACHE_HOME:-$HOME/.cache}/stoke/bench/relu-powerinfer-1000000000-Q4_0-seed1.gguf
tmp=$(mktemp -d)
git worktree add -q "$tmp/wt" 0371ef5
(cd "$tmp/wt" && go build -o "$tmp/stoke.before" ./cmd/stoke)
git worktree remove --force "$tmp/wt"
go build -o "$tmp/stoke" ./cmd/stoke
"$tmp/stoke" profile -m "$m" --text ../shared/models/texts/tinystories_sample.txt --out "$tmp/prof.gguf" --max-tokens 1024 > /dev/null
: > "$out"
for b in before now; do
	bin=$tmp/stoke
	[ $b = before ] && bin=$tmp/stoke.before
	echo "== $b" >> "$out"
	"$bin" plan -m "$m" --vram 400MiB --profile "$tmp/prof.gguf" --dram-bw 40 --device-bw 192 --ctx 1024 --json |
		python3 -c 'import json,sys; d=json.load(sys.stdin); print({k: d[k] for k in ("total_bytes", "hot_neurons", "neurons", "hit_rate", "output_on_device")})' >> "$out"
	"$bin" plan -m "$m" --vram 400MiB --profile "$tmp/prof.gguf" --dram-bw 40 --device-bw 192 --ctx 1024 | grep -i "roofline\|tok/s" >> "$out" || true
done
rm -rf "$tmp"
cat "$out"
