//go:build linux

package cuda

import (
	"fmt"
	"runtime"
	"time"
	"unsafe"

	"github.com/ebitengine/purego"
)

// cuResult is a CUresult, the status every driver API call returns.
type cuResult int32

// The CUresult values Stoke treats specially (cuda.h).
const (
	cuErrOutOfMemory    cuResult = 2
	cuErrNoDevice       cuResult = 100
	cuErrInvalidPTX     cuResult = 218
	cuErrNoJIT          cuResult = 221
	cuErrUnsupportedPTX cuResult = 222
)

// Enumerations and flags from cuda.h.
const (
	attrMultiprocessors = 16 // CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT
	attrL2Bytes         = 38 // CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE
	attrCCMajor         = 75 // CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR
	attrCCMinor         = 76 // CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR

	hostAllocDeviceMap = 0x02 // CU_MEMHOSTALLOC_DEVICEMAP
	streamNonBlocking  = 0x01 // CU_STREAM_NON_BLOCKING

	jitErrorLogBuffer     = 5 // CU_JIT_ERROR_LOG_BUFFER
	jitErrorLogBufferSize = 6 // CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES
)

// libcuda is the part of the driver API Stoke uses, bound at run time with
// purego (no cgo). Functions whose ABI name carries a version suffix are
// bound by that name (cuMemAlloc_v2, …), as cuda.h's macros do.
type libcuda struct {
	path   string
	handle uintptr

	cuInit                    func(flags uint32) cuResult
	cuDriverGetVersion        func(v *int32) cuResult
	cuDeviceGetCount          func(n *int32) cuResult
	cuDeviceGet               func(dev *int32, ordinal int32) cuResult
	cuDeviceGetName           func(name *byte, n int32, dev int32) cuResult
	cuDeviceGetAttribute      func(v *int32, attr int32, dev int32) cuResult
	cuDeviceTotalMem          func(bytes *uint64, dev int32) cuResult
	cuDevicePrimaryCtxRetain  func(ctx *uintptr, dev int32) cuResult
	cuDevicePrimaryCtxRelease func(dev int32) cuResult
	cuCtxSetCurrent           func(ctx uintptr) cuResult
	cuMemGetInfo              func(free, total *uint64) cuResult
	cuMemAlloc                func(p *uint64, n uint64) cuResult
	cuMemFree                 func(p uint64) cuResult
	cuMemsetD8Async           func(p uint64, v uint8, n uint64, s uintptr) cuResult
	cuMemHostAlloc            func(p **byte, n uint64, flags uint32) cuResult
	cuMemHostGetDevicePointer func(d *uint64, p *byte, flags uint32) cuResult
	cuMemFreeHost             func(p *byte) cuResult
	cuMemcpyHtoDAsync         func(dst uint64, src *byte, n uint64, s uintptr) cuResult
	cuMemcpyDtoHAsync         func(dst *byte, src uint64, n uint64, s uintptr) cuResult
	cuStreamCreate            func(s *uintptr, flags uint32) cuResult
	cuStreamSynchronize       func(s uintptr) cuResult
	cuStreamDestroy           func(s uintptr) cuResult
	cuEventCreate             func(e *uintptr, flags uint32) cuResult
	cuEventRecord             func(e, s uintptr) cuResult
	cuEventSynchronize        func(e uintptr) cuResult
	cuEventElapsedTime        func(ms *float32, start, end uintptr) cuResult
	cuEventDestroy            func(e uintptr) cuResult
	cuModuleLoadDataEx        func(m *uintptr, image *byte, n uint32, opts *int32, vals *uintptr) cuResult
	cuModuleUnload            func(m uintptr) cuResult
	cuModuleGetFunction       func(f *uintptr, m uintptr, name string) cuResult
	cuLaunchKernel            func(f uintptr, gx, gy, gz, bx, by, bz, smem uint32, s uintptr, params *unsafe.Pointer, extra *unsafe.Pointer) cuResult
	cuGetErrorName            func(r cuResult, s **byte) cuResult
	cuGetErrorString          func(r cuResult, s **byte) cuResult
}

// loadLibcuda opens the driver library at path and binds every function,
// failing (never panicking) when the library or a symbol is missing.
func loadLibcuda(path string) (*libcuda, error) {
	h, err := purego.Dlopen(path, purego.RTLD_NOW|purego.RTLD_GLOBAL)
	if err != nil {
		return nil, fmt.Errorf("cannot load %s (no NVIDIA driver installed?): %v", path, err)
	}
	l := &libcuda{path: path, handle: h}
	syms := []struct {
		fn   any
		name string
	}{
		{&l.cuInit, "cuInit"},
		{&l.cuDriverGetVersion, "cuDriverGetVersion"},
		{&l.cuDeviceGetCount, "cuDeviceGetCount"},
		{&l.cuDeviceGet, "cuDeviceGet"},
		{&l.cuDeviceGetName, "cuDeviceGetName"},
		{&l.cuDeviceGetAttribute, "cuDeviceGetAttribute"},
		{&l.cuDeviceTotalMem, "cuDeviceTotalMem_v2"},
		{&l.cuDevicePrimaryCtxRetain, "cuDevicePrimaryCtxRetain"},
		{&l.cuDevicePrimaryCtxRelease, "cuDevicePrimaryCtxRelease_v2"},
		{&l.cuCtxSetCurrent, "cuCtxSetCurrent"},
		{&l.cuMemGetInfo, "cuMemGetInfo_v2"},
		{&l.cuMemAlloc, "cuMemAlloc_v2"},
		{&l.cuMemFree, "cuMemFree_v2"},
		{&l.cuMemsetD8Async, "cuMemsetD8Async"},
		{&l.cuMemHostAlloc, "cuMemHostAlloc"},
		{&l.cuMemHostGetDevicePointer, "cuMemHostGetDevicePointer_v2"},
		{&l.cuMemFreeHost, "cuMemFreeHost"},
		{&l.cuMemcpyHtoDAsync, "cuMemcpyHtoDAsync_v2"},
		{&l.cuMemcpyDtoHAsync, "cuMemcpyDtoHAsync_v2"},
		{&l.cuStreamCreate, "cuStreamCreate"},
		{&l.cuStreamSynchronize, "cuStreamSynchronize"},
		{&l.cuStreamDestroy, "cuStreamDestroy_v2"},
		{&l.cuEventCreate, "cuEventCreate"},
		{&l.cuEventRecord, "cuEventRecord"},
		{&l.cuEventSynchronize, "cuEventSynchronize"},
		{&l.cuEventElapsedTime, "cuEventElapsedTime"},
		{&l.cuEventDestroy, "cuEventDestroy_v2"},
		{&l.cuModuleLoadDataEx, "cuModuleLoadDataEx"},
		{&l.cuModuleUnload, "cuModuleUnload"},
		{&l.cuModuleGetFunction, "cuModuleGetFunction"},
		{&l.cuLaunchKernel, "cuLaunchKernel"},
		{&l.cuGetErrorName, "cuGetErrorName"},
		{&l.cuGetErrorString, "cuGetErrorString"},
	}
	for _, s := range syms {
		p, err := purego.Dlsym(h, s.name)
		if err != nil || p == 0 {
			_ = purego.Dlclose(h)
			return nil, fmt.Errorf("%s has no %s (driver too old?)", path, s.name)
		}
		purego.RegisterFunc(s.fn, p)
	}
	return l, nil
}

// cuError is a failed driver call.
type cuError struct {
	call string
	code cuResult
	name string
	desc string
}

func (e *cuError) Error() string {
	return fmt.Sprintf("%s: %s (%s)", e.call, e.name, e.desc)
}

// check turns a CUresult into an error naming the call.
func (l *libcuda) check(call string, r cuResult) error {
	if r == 0 {
		return nil
	}
	e := &cuError{call: call, code: r, name: fmt.Sprintf("CUresult %d", int32(r)), desc: "unknown error"}
	var p *byte
	if l.cuGetErrorName(r, &p) == 0 && p != nil {
		e.name = cString(p)
	}
	p = nil
	if l.cuGetErrorString(r, &p) == 0 && p != nil {
		e.desc = cString(p)
	}
	return e
}

// cString copies the NUL-terminated string at p (at most 512 bytes).
func cString(p *byte) string {
	var b []byte
	for i := 0; i < 512; i++ {
		c := *(*byte)(unsafe.Add(unsafe.Pointer(p), i))
		if c == 0 {
			break
		}
		b = append(b, c)
	}
	return string(b)
}

// cuDevice is a device reached through libcuda: the primary context of
// one GPU, one non-blocking stream, the loaded module. Every method runs on
// the backend's driver thread, where the context is current.
type cuDevice struct {
	l      *libcuda
	dev    int32
	ctx    uintptr
	stream uintptr
	mod    uintptr
	fns    [numKernels]uintptr
	ev     [2]uintptr
}

// openCUDA initialises the driver and opens device ordinal: context,
// stream, module (the PTX for its compute capability) and functions. It
// runs on the locked driver thread. Each failure is one line that says
// what is missing.
func openCUDA(l *libcuda, ordinal int) (dev device, info devInfo, err error) {
	if r := l.cuInit(0); r != 0 {
		err := l.check("cuInit", r)
		if r == cuErrNoDevice {
			return nil, info, fmt.Errorf("no CUDA device (%v)", err)
		}
		return nil, info, fmt.Errorf("the NVIDIA driver did not initialise (%v)", err)
	}
	var v, n int32
	if err := l.check("cuDriverGetVersion", l.cuDriverGetVersion(&v)); err != nil {
		return nil, info, err
	}
	info.driver = int(v)
	if err := l.check("cuDeviceGetCount", l.cuDeviceGetCount(&n)); err != nil {
		return nil, info, err
	}
	if n == 0 {
		return nil, info, fmt.Errorf("no CUDA device (the driver reports none)")
	}
	if ordinal < 0 || ordinal >= int(n) {
		return nil, info, fmt.Errorf("no CUDA device %d (the driver reports %d)", ordinal, n)
	}
	d := &cuDevice{l: l}
	if err := l.check("cuDeviceGet", l.cuDeviceGet(&d.dev, int32(ordinal))); err != nil {
		return nil, info, err
	}
	var name [256]byte
	if err := l.check("cuDeviceGetName", l.cuDeviceGetName(&name[0], int32(len(name)), d.dev)); err != nil {
		return nil, info, err
	}
	info.name = cString(&name[0])
	attr := func(a int32) (int, error) {
		var x int32
		err := l.check("cuDeviceGetAttribute", l.cuDeviceGetAttribute(&x, a, d.dev))
		return int(x), err
	}
	if info.cc[0], err = attr(attrCCMajor); err != nil {
		return nil, info, err
	}
	if info.cc[1], err = attr(attrCCMinor); err != nil {
		return nil, info, err
	}
	if info.sms, err = attr(attrMultiprocessors); err != nil {
		return nil, info, err
	}
	if info.l2, err = attr(attrL2Bytes); err != nil {
		return nil, info, err
	}
	var total uint64
	if err := l.check("cuDeviceTotalMem", l.cuDeviceTotalMem(&total, d.dev)); err != nil {
		return nil, info, err
	}
	info.total = int64(total)
	p, err := choosePTX(info.cc, info.driver, info.name)
	if err != nil {
		return nil, info, err
	}
	info.ptx = p
	if err := l.check("cuDevicePrimaryCtxRetain", l.cuDevicePrimaryCtxRetain(&d.ctx, d.dev)); err != nil {
		return nil, info, err
	}
	fail := func(err error) (device, devInfo, error) {
		_ = d.close()
		return nil, info, err
	}
	if err := l.check("cuCtxSetCurrent", l.cuCtxSetCurrent(d.ctx)); err != nil {
		return fail(err)
	}
	free, _, err := d.memInfo()
	if err != nil {
		return fail(err)
	}
	info.reserved = info.total - free
	if err := l.check("cuStreamCreate", l.cuStreamCreate(&d.stream, streamNonBlocking)); err != nil {
		return fail(err)
	}
	for i := range d.ev {
		if err := l.check("cuEventCreate", l.cuEventCreate(&d.ev[i], 0)); err != nil {
			return fail(err)
		}
	}
	t0 := time.Now()
	if err := d.load(p); err != nil {
		return fail(err)
	}
	info.jit = time.Since(t0)
	return d, info, nil
}

// load JIT-compiles the PTX and looks up every kernel of the launch table.
func (d *cuDevice) load(p *ptxImage) error {
	img := append([]byte(p.text), 0)
	logBuf := make([]byte, 4096)
	var pin runtime.Pinner
	pin.Pin(&img[0])
	pin.Pin(&logBuf[0])
	defer pin.Unpin()
	opts := [2]int32{jitErrorLogBuffer, jitErrorLogBufferSize}
	vals := [2]uintptr{uintptr(unsafe.Pointer(&logBuf[0])), uintptr(len(logBuf))}
	r := d.l.cuModuleLoadDataEx(&d.mod, &img[0], 2, &opts[0], &vals[0])
	runtime.KeepAlive(logBuf)
	if r != 0 {
		err := d.l.check("cuModuleLoadDataEx", r)
		switch r {
		case cuErrUnsupportedPTX:
			return fmt.Errorf("the driver is too old for Stoke's %s PTX (ISA %s): %s (%v)", p.target, p.isa, minDriverNote(p.isa), err)
		case cuErrNoJIT:
			return fmt.Errorf("the driver has no PTX JIT compiler (libnvidia-ptxjitcompiler missing?): %v", err)
		}
		log := cString(&logBuf[0])
		if log != "" {
			return fmt.Errorf("loading the %s PTX: %v: %s", p.target, err, firstLine(log))
		}
		return fmt.Errorf("loading the %s PTX: %v", p.target, err)
	}
	for k := range numKernels {
		name := kernelSpecs[k].name
		if err := d.l.check("cuModuleGetFunction "+name, d.l.cuModuleGetFunction(&d.fns[k], d.mod, name)); err != nil {
			return err
		}
	}
	return nil
}

func (d *cuDevice) alloc(n int64) (uint64, error) {
	var p uint64
	r := d.l.cuMemAlloc(&p, uint64(n))
	if r == cuErrOutOfMemory {
		return 0, errOOM(n)
	}
	return p, d.l.check("cuMemAlloc", r)
}

func (d *cuDevice) free(p uint64) error {
	return d.l.check("cuMemFree", d.l.cuMemFree(p))
}

func (d *cuDevice) memset(p uint64, n int64) error {
	return d.l.check("cuMemsetD8Async", d.l.cuMemsetD8Async(p, 0, uint64(n), d.stream))
}

func (d *cuDevice) htod(dst uint64, src []byte) error {
	return d.l.check("cuMemcpyHtoDAsync", d.l.cuMemcpyHtoDAsync(dst, &src[0], uint64(len(src)), d.stream))
}

func (d *cuDevice) dtoh(dst []byte, src uint64) error {
	return d.l.check("cuMemcpyDtoHAsync", d.l.cuMemcpyDtoHAsync(&dst[0], src, uint64(len(dst)), d.stream))
}

func (d *cuDevice) hostAlloc(n int, mapped bool) ([]byte, uint64, error) {
	var (
		p     *byte
		flags uint32
	)
	if mapped {
		flags = hostAllocDeviceMap
	}
	if err := d.l.check("cuMemHostAlloc", d.l.cuMemHostAlloc(&p, uint64(n), flags)); err != nil {
		return nil, 0, err
	}
	if !mapped {
		return unsafe.Slice(p, n), 0, nil
	}
	var dp uint64
	if err := d.l.check("cuMemHostGetDevicePointer", d.l.cuMemHostGetDevicePointer(&dp, p, 0)); err != nil {
		_ = d.l.cuMemFreeHost(p)
		return nil, 0, err
	}
	return unsafe.Slice(p, n), dp, nil
}

func (d *cuDevice) hostFree(b []byte) error {
	return d.l.check("cuMemFreeHost", d.l.cuMemFreeHost(&b[0]))
}

func (d *cuDevice) launch(k kernelID, grid, block [3]uint32, params *unsafe.Pointer) error {
	r := d.l.cuLaunchKernel(d.fns[k], grid[0], grid[1], grid[2], block[0], block[1], block[2], 0, d.stream, params, nil)
	if r != 0 {
		return d.l.check("cuLaunchKernel "+kernelSpecs[k].name, r)
	}
	return nil
}

func (d *cuDevice) sync() error {
	return d.l.check("cuStreamSynchronize", d.l.cuStreamSynchronize(d.stream))
}

func (d *cuDevice) memInfo() (free, total int64, err error) {
	var f, t uint64
	err = d.l.check("cuMemGetInfo", d.l.cuMemGetInfo(&f, &t))
	return int64(f), int64(t), err
}

func (d *cuDevice) timerStart() error {
	return d.l.check("cuEventRecord", d.l.cuEventRecord(d.ev[0], d.stream))
}

func (d *cuDevice) timerStop() (time.Duration, error) {
	if err := d.l.check("cuEventRecord", d.l.cuEventRecord(d.ev[1], d.stream)); err != nil {
		return 0, err
	}
	if err := d.l.check("cuEventSynchronize", d.l.cuEventSynchronize(d.ev[1])); err != nil {
		return 0, err
	}
	var ms float32
	if err := d.l.check("cuEventElapsedTime", d.l.cuEventElapsedTime(&ms, d.ev[0], d.ev[1])); err != nil {
		return 0, err
	}
	return time.Duration(float64(ms) * float64(time.Millisecond)), nil
}

// close releases the stream, events, module and the primary context.
func (d *cuDevice) close() error {
	var first error
	keep := func(err error) {
		if first == nil {
			first = err
		}
	}
	if d.stream != 0 {
		keep(d.l.check("cuStreamSynchronize", d.l.cuStreamSynchronize(d.stream)))
	}
	if d.mod != 0 {
		keep(d.l.check("cuModuleUnload", d.l.cuModuleUnload(d.mod)))
	}
	for _, e := range d.ev {
		if e != 0 {
			keep(d.l.check("cuEventDestroy", d.l.cuEventDestroy(e)))
		}
	}
	if d.stream != 0 {
		keep(d.l.check("cuStreamDestroy", d.l.cuStreamDestroy(d.stream)))
	}
	if d.ctx != 0 {
		keep(d.l.check("cuDevicePrimaryCtxRelease", d.l.cuDevicePrimaryCtxRelease(d.dev)))
	}
	*d = cuDevice{l: d.l}
	return first
}

// openLibrary loads libcuda and returns the function that opens a device
// on the driver thread.
func openLibrary(path string, ordinal int) (func() (device, devInfo, error), error) {
	l, err := loadLibcuda(path)
	if err != nil {
		return nil, err
	}
	return func() (device, devInfo, error) { return openCUDA(l, ordinal) }, nil
}
