#!/bin/sh
# Mapped decode against how the page cache holds the file (run from the
# repository root, after run.sh has written the model):
#   bench/results/cpu-2026-11-29c/page-cache.sh
# Drops the 1B ReLU model from the page cache (POSIX_FADV_DONTNEED), runs
# BenchmarkSparseDecode (whose mapped runs come first and fault the file
# in), then drops it again, reads it with cat, and runs again. Prints the
# kernel's FileHugePages (page cache held in huge folios) at each step.
# Then drops the dense 1B bench models and runs BenchmarkDecode (mapped
# first). page-cache.txt is its output at b91f4b6, before mapped loads
# were prefaulted (gguf.File.Prefault); page-cache-prefault.txt after.
set -eu
m=$HOME/.cache/stoke/bench/relu-powerinfer-1000000000-Q4_0-seed1.gguf
bin=$(mktemp -d)
go test -c -o "$bin/engine.test" ./engine/
dropf() { python3 -c 'import os,sys; fd=os.open(sys.argv[1], os.O_RDONLY); os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)' "$1"; }
drop() { dropf "$m"; }
huge() { grep FileHugePages /proc/meminfo; }
drop; echo "dropped: $(huge)"
echo "page cache filled by the mapped run's faults:"
"$bin/engine.test" -test.run=NONE -test.bench=SparseDecode -test.benchtime=64x | grep tok/s
echo "after: $(huge)"
drop; cat "$m" >/dev/null; echo "dropped, then read by cat: $(huge)"
"$bin/engine.test" -test.run=NONE -test.bench=SparseDecode -test.benchtime=64x | grep tok/s
for t in Q4_0 Q8_0; do dropf "$HOME/.cache/stoke/bench/llama-1000000000-$t-seed1.gguf"; done
echo "dense bench models dropped: $(huge)"
"$bin/engine.test" -test.run=NONE -test.bench='^BenchmarkDecode$/Q/threads=2' -test.benchtime=40x | grep tok/s
echo "after: $(huge)"
rm -rf "$bin"
