//go:build !linux

package cpu_test

// weightBytes returns n zero bytes for a benchmark's weights (the Go heap
// where the engine's huge-page memory is Linux's).
func weightBytes(n int) []byte { return make([]byte, n) }
