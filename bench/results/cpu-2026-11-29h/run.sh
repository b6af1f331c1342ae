#!/usr/bin/env bash
# Sparse decode with the predictor's forms: stoke bench --sparse on the
# planted 1B ReLU Q4_0 model in PowerInfer's layout (F16 predictor, rank
# 257), as stored and renumbered hot first, with the predictor as stored
# (FC2 rank-major, since b10ce46) and re-encoded by --predictor-type, next
# to a build of 6d4631b (FC2 read row by row), alternating. Writes
# decode.txt here.
#
#	bench/results/cpu-2026-11-29h/run.sh
#
# The models come from `go test ./engine -run '^$' -bench SparseDecode`
# (sparseBenchModel, hotFirstModel), written once into the user cache.
set -euo pipefail
cd "$(dirname "$0")/../../.."
out=bench/results/cpu-2026-11-29h/decode.txt
dir=${XDG_CACHE_HOME:-$HOME/.cache}/stoke/bench
base=$(mktemp -d)
git worktree add -q "$base/wt" 6d4631b
(cd "$base/wt" && go build -o "$base/stoke.base" ./cmd/stoke)
git worktree remove --force "$base/wt"
go build -o "$base/stoke" ./cmd/stoke
: > "$out"
for round in 1 2 3; do
	for m in relu-powerinfer-1000000000-Q4_0-seed1 relu-powerinfer-1000000000-Q4_0-seed1-hot; do
		for v in base f16 q8_0 q4_0; do
			case $v in
			base) cmd=("$base/stoke.base" bench) ;;
			f16) cmd=("$base/stoke" bench) ;;
			*) cmd=("$base/stoke" bench --predictor-type "$v") ;;
			esac
			printf 'round %d %-45s %-5s ' "$round" "$m" "$v" >> "$out"
			"${cmd[@]}" -m "$dir/$m.gguf" --sparse --threads 2 -p 0 -n 64 -r 3 2>/dev/null | tail -1 >> "$out"
		done
	done
done
rm -rf "$base"
cat "$out"

# The 7B-layer table, with the predictor in the forms the engine computes
# (rank-major; "rows": a block-quantized sidecar's stored layout), three times.
for i in 1 2 3; do
	go test ./kernels/cpu -count=1 -run TestSparseFFNTable -sparse-table -v > bench/results/cpu-2026-11-29h/sparse-table-$i.txt
done

# Engine-level decode, dense against sparse (the file's predictor, which
# the engine now computes rank-major), three runs.
go test ./engine -count=3 -run '^$' -bench SparseDecode -benchtime 64x > bench/results/cpu-2026-11-29h/sparse-decode.txt
