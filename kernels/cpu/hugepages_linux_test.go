//go:build linux

package cpu_test

import "golang.org/x/sys/unix"

// weightBytes returns n zero bytes for a benchmark's weights, held as the
// engine holds a model read into memory (gguf.OpenInMemory): anonymous
// memory asked for in transparent huge pages. On the Go heap the weights
// would sit in 4 KiB pages, and a sparse product, which reads short runs
// scattered over the matrix, would pay a page walk for most rows, which
// the engine does not. The memory is never freed: the benchmarks keep
// their layers for the life of the test binary.
func weightBytes(n int) []byte {
	b, err := unix.Mmap(-1, 0, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return make([]byte, n)
	}
	_ = unix.Madvise(b, unix.MADV_HUGEPAGE)
	return b
}
