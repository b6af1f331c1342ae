//go:build !linux

package cuda

import "errors"

// openLibrary: the CUDA backend binds libcuda.so.1, which only Linux has.
func openLibrary(path string, ordinal int) (func() (device, devInfo, error), error) {
	return nil, errors.New("the CUDA backend needs Linux (libcuda.so.1)")
}
