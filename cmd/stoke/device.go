package main

import (
	"github.com/stokehq/stoke/kernels"
	"github.com/stokehq/stoke/kernels/cuda"
)

// openGPU opens the first CUDA device, or says in one line why there is
// none (no driver, no device, a driver too old for the PTX): the caller
// then runs on the CPU.
func openGPU() (kernels.Backend, string) {
	b, err := cuda.Open(cuda.Config{})
	if err != nil {
		return nil, err.Error()
	}
	return b, ""
}
