package main

import (
	"log/slog"

	"github.com/stokehq/stoke/kernels"
	"github.com/stokehq/stoke/kernels/cuda"
)

// openCUDA opens the first NVIDIA GPU as a kernels.Backend, or says why
// there is none (no driver library, no device, one too old). A variable
// so tests can stand a fake in.
var openCUDA = func() (kernels.Backend, error) {
	b, err := cuda.Open(cuda.Config{Logger: slog.Default()})
	if err != nil {
		return nil, err
	}
	return b, nil
}
