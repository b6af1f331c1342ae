package cuda

import (
	"fmt"
	"time"
	"unsafe"

	"github.com/stokehq/stoke/kernels"
)

// device is what the backend needs from a GPU: libcuda (cuDevice) in
// production, a host emulator of the kernels in tests. Every method is
// called on the backend's driver thread only. Addresses are device
// addresses (CUdeviceptr); host buffers from hostAlloc are pinned, and
// when mapped also visible to kernels at the returned device address.
type device interface {
	alloc(n int64) (uint64, error) // n > 0; errOOM when it does not fit
	free(p uint64) error
	memset(p uint64, n int64) error                       // zero n bytes, in stream order
	htod(dst uint64, src []byte) error                    // src pinned, asynchronous
	dtoh(dst []byte, src uint64) error                    // dst pinned, asynchronous
	hostAlloc(n int, mapped bool) ([]byte, uint64, error) // mapped: also give its device address
	hostFree(b []byte) error
	launch(k kernelID, grid, block [3]uint32, params *unsafe.Pointer) error
	sync() error // wait for the stream
	memInfo() (free, total int64, err error)
	timerStart() error                 // record the start event
	timerStop() (time.Duration, error) // record the end event, wait, elapsed
	close() error
}

// devInfo is what opening a device learned about it.
type devInfo struct {
	name     string
	cc       [2]int
	sms      int
	l2       int
	total    int64
	reserved int64 // total − free right after the context was made
	driver   int   // driver API version, e.g. 12020
	ptx      *ptxImage
	jit      time.Duration
}

// errOOM is the allocation failure the backend interface promises.
func errOOM(n int64) error {
	return fmt.Errorf("cuda: allocating %d bytes: %w", n, kernels.ErrOutOfMemory)
}
