#!/usr/bin/env bash
# stoke serve --parallel 4 with 1–4 concurrent clients, each a 64-token
# greedy completion, aggregate tok/s timed from the clients: dense, and
# --sparse with a build of d4e13c7 (a pass decoding several sequences ran
# the dense FFN on rows) and with this tree (every decode step its own
# sparse FFN), on the planted 1B ReLU Q4_0 model in PowerInfer's layout
# (see run.sh), 2 threads, two rounds. Writes serve-streams.txt here.
# Needs curl and python3.
#
#	bench/results/cpu-2026-11-29h/serve-streams.sh
set -euo pipefail
cd "$(dirname "$0")/../../.."
out=bench/results/cpu-2026-11-29h/serve-streams.txt
m=${XDG_CACHE_HOME:-$HOME/.cache}/stoke/bench/relu-powerinfer-1000000000-Q4_0-seed1.gguf
tmp=$(mktemp -d)
git worktree add -q "$tmp/wt" d4e13c7
(cd "$tmp/wt" && go build -o "$tmp/stoke.prev" ./cmd/stoke)
git worktree remove --force "$tmp/wt"
go build -o "$tmp/stoke" ./cmd/stoke
: > "$out"
for round in 1 2; do
	for streams in 1 2 3 4; do
		for v in dense prev new; do
			case $v in
			dense) bin=$tmp/stoke extra=() ;;
			prev) bin=$tmp/stoke.prev extra=(--sparse) ;;
			new) bin=$tmp/stoke extra=(--sparse) ;;
			esac
			"$bin" serve -m "$m" --port 18081 --threads 2 --parallel 4 --quiet "${extra[@]}" 2>/dev/null &
			pid=$!
			for _ in $(seq 120); do curl -sf localhost:18081/health >/dev/null && break; sleep 0.5; done
			curl -s localhost:18081/v1/completions -d '{"prompt":"Hi","max_tokens":4,"temperature":0}' >/dev/null
			s=$(date +%s.%N)
			clients=()
			for c in $(seq "$streams"); do
				curl -s localhost:18081/v1/completions -d "{\"prompt\":\"Once upon a time $c\",\"max_tokens\":64,\"temperature\":0}" >"$tmp/r$c.json" &
				clients+=($!)
			done
			wait "${clients[@]}"
			e=$(date +%s.%N)
			n=0
			for c in $(seq "$streams"); do
				k=$(python3 -c "import json; print(json.load(open('$tmp/r$c.json'))['usage']['completion_tokens'])")
				n=$((n + k))
			done
			python3 -c "print('round $round streams $streams %-6s %d tokens in %.2f s: %.1f tok/s' % ('$v', $n, $e-$s, $n/($e-$s)))" >>"$out"
			kill $pid
			wait $pid 2>/dev/null || true
		done
	done
done
rm -rf "$tmp"
cat "$out"
