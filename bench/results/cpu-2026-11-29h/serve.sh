#!/usr/bin/env bash
# stoke serve, one client: a 128-token greedy completion (after a warm-up
# request), timed from the client, dense against --sparse with the file's
# F16 predictor and with it re-encoded in Q4_0, on the planted 1B ReLU
# Q4_0 model in PowerInfer's layout (see run.sh), 2 threads, alternating
# twice. Writes serve.txt here. Needs curl and python3.
#
#	bench/results/cpu-2026-11-29h/serve.sh
set -euo pipefail
cd "$(dirname "$0")/../../.."
out=bench/results/cpu-2026-11-29h/serve.txt
m=${XDG_CACHE_HOME:-$HOME/.cache}/stoke/bench/relu-powerinfer-1000000000-Q4_0-seed1.gguf
bin=$(mktemp -d)/stoke
go build -o "$bin" ./cmd/stoke
: > "$out"
for round in 1 2; do
	for mode in dense sparse sparse-q4_0; do
		case $mode in
		dense) extra=() ;;
		sparse) extra=(--sparse) ;;
		sparse-q4_0) extra=(--sparse --predictor-type q4_0) ;;
		esac
		"$bin" serve -m "$m" --port 18080 --threads 2 --parallel 2 --quiet "${extra[@]}" 2>/dev/null &
		pid=$!
		for _ in $(seq 120); do curl -sf localhost:18080/health >/dev/null && break; sleep 0.5; done
		curl -s localhost:18080/v1/completions -d '{"prompt":"Once upon a time","max_tokens":8,"temperature":0}' >/dev/null
		s=$(date +%s.%N)
		n=$(curl -s localhost:18080/v1/completions -d '{"prompt":"Once upon a time","max_tokens":128,"temperature":0}' |
			python3 -c 'import json,sys; print(json.load(sys.stdin)["usage"]["completion_tokens"])')
		e=$(date +%s.%N)
		python3 -c "print('round $round %-12s %d tokens in %.2f s: %.1f tok/s' % ('$mode', $n, $e-$s, $n/($e-$s)))" >> "$out"
		kill $pid
		wait $pid 2>/dev/null || true
	done
done
cat "$out"
