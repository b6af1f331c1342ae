package cuda

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"sync"
	"time"
	"unsafe"

	"github.com/stokehq/stoke/kernels"
	"github.com/stokehq/stoke/models/dtype"
)

// Config says which device to open and how.
type Config struct {
	// Device is the CUDA device ordinal.
	Device int
	// Library is the driver library to load; empty means $STOKE_LIBCUDA,
	// or "libcuda.so.1" when that is unset.
	Library string
	// Logger receives one line when the device opens; nil means
	// slog.Default().
	Logger *slog.Logger
}

// Sizes of the backend's own device and pinned memory, allocated when it
// opens (Info.ReserveNote names them, so plans can count them).
const (
	scratchBytes  = 4 << 20  // AxpyRows and Attention partial sums
	counterBytes  = 16 << 10 // their "last block" counters, then a fallback error word
	maxCounters   = counterBytes/4 - 64
	stageInitial  = 4 << 20  // pinned staging, grown on demand …
	stageMax      = 64 << 20 // … up to this
	stageChunk    = 16 << 20 // transfers are staged in chunks of at most this
	stageAlign    = 256
	errWordBytes  = 256
	cmdQueueDepth = 1024
)

// ScratchBytes is the device memory a Backend allocates for itself when it
// opens (kernel scratch and counters), on top of the CUDA context, whose
// size only the driver knows (Device().ContextBytes after opening).
const ScratchBytes = scratchBytes + counterBytes

var errClosed = errors.New("cuda: backend is closed")

// Backend is an NVIDIA GPU as a kernels.Backend, reached through the
// driver API (libcuda.so.1) without cgo.
//
// All driver calls run on one goroutine locked to an OS thread, where the
// device's primary context is current; the methods send it commands over
// a channel. Ops, uploads and downloads are asynchronous: they return at
// once and the driver thread launches them in order on one stream. Sync
// waits for everything, finishes the downloads and returns the first
// error since the last Sync. Uploads and downloads go through pinned host
// memory (staging buffers), since copies from ordinary Go memory run at a
// fraction of the bus speed. The methods may be called from several
// goroutines; ops from different goroutines are ordered as they arrive.
type Backend struct {
	info    devInfo
	name    string
	log     *slog.Logger
	cmds    chan cmd
	syncRes chan error
	done    chan struct{}

	mu     sync.RWMutex // guards closed against the channel's close
	closed bool
	syncMu sync.Mutex // one Sync at a time

	ropeMu  sync.Mutex
	ropeKey ropeKey
	ropeTab *ropeInv

	// Driver-thread state.
	dev      device
	err      error // first error since the last Sync
	stage    []byte
	stageOff int
	pending  []pendingCopy
	allocs   map[uint64]int64
	scratch  uint64 // scratchBytes of floats, then the counters
	counters uint64
	errHost  []byte // pinned memory holding the kernels' error word
	errDev   uint64 // where kernels write it: errHost mapped, or device memory
	errCopy  bool   // errDev is device memory: Sync copies it to errHost
	args     *launchArgs
	pin      runtime.Pinner
}

// launchArgs is the kernel-parameter block: cuLaunchKernel takes an array
// of pointers to the values. It is pinned for the backend's lifetime.
type launchArgs struct {
	vals [maxParams]uint64
	ptrs [maxParams]unsafe.Pointer
	rope ropeInv
}

// pendingCopy is a download waiting in the staging buffer for the stream.
type pendingCopy struct {
	dst []byte
	off int
}

type cmdKind uint8

const (
	cmdLaunch cmdKind = iota
	cmdUpload
	cmdDownload
	cmdMemset
	cmdFail
	cmdSync
	cmdCall
)

// cmd is one request to the driver thread.
type cmd struct {
	kind  cmdKind
	k     kernelID
	nargs uint8
	grid  [3]uint32
	block [3]uint32
	args  [maxParams]uint64
	rope  *ropeInv
	dptr  uint64
	n     int64
	host  []byte
	err   error
	fn    func()
	done  chan struct{}
}

// Open opens CUDA device cfg.Device. Without a usable GPU (no driver
// library, no device, a device older than compute capability 5.2, a
// driver too old for the PTX) it returns a one-line error saying why, and
// the caller runs on the CPU.
func Open(cfg Config) (*Backend, error) {
	path := cfg.Library
	if path == "" {
		path = os.Getenv("STOKE_LIBCUDA")
	}
	if path == "" {
		path = "libcuda.so.1"
	}
	open, err := openLibrary(path, cfg.Device)
	if err != nil {
		return nil, fmt.Errorf("cuda: %w", err)
	}
	return start(cfg, open)
}

// start runs the driver thread, which opens the device with open.
func start(cfg Config, open func() (device, devInfo, error)) (*Backend, error) {
	b := &Backend{
		log:     cfg.Logger,
		cmds:    make(chan cmd, cmdQueueDepth),
		syncRes: make(chan error, 1),
		done:    make(chan struct{}),
		allocs:  map[uint64]int64{},
	}
	if b.log == nil {
		b.log = slog.Default()
	}
	ready := make(chan error, 1)
	go b.loop(open, ready)
	if err := <-ready; err != nil {
		return nil, fmt.Errorf("cuda: %w", err)
	}
	i := b.info
	b.name = fmt.Sprintf("cuda:%d %s", cfg.Device, i.name)
	b.log.Info("cuda device open", "device", i.name, "cc", fmt.Sprintf("%d.%d", i.cc[0], i.cc[1]),
		"sms", i.sms, "total_mib", i.total>>20, "context_mib", i.reserved>>20,
		"driver_cuda", cudaVersion(i.driver), "ptx", i.ptx.target, "jit", i.jit.Round(time.Millisecond))
	return b, nil
}

// loop is the driver thread: it opens the device, reports to ready, then
// runs commands until the channel closes, and releases everything.
func (b *Backend) loop(open func() (device, devInfo, error), ready chan<- error) {
	// The thread stays locked until the goroutine ends, and then exits:
	// the context never becomes current on a thread Go reuses.
	runtime.LockOSThread()
	dev, info, err := open()
	if err != nil {
		ready <- err
		close(b.done)
		return
	}
	b.dev, b.info = dev, info
	if err := b.setup(); err != nil {
		b.teardown()
		ready <- err
		close(b.done)
		return
	}
	ready <- nil
	for c := range b.cmds {
		b.exec(&c)
	}
	b.teardown()
	close(b.done)
}

// setup allocates the backend's own memory: staging, the error word,
// scratch and counters, the pinned parameter block.
func (b *Backend) setup() error {
	var err error
	if b.stage, _, err = b.dev.hostAlloc(stageInitial, false); err != nil {
		return err
	}
	if b.scratch, err = b.dev.alloc(scratchBytes + counterBytes); err != nil {
		return err
	}
	b.counters = b.scratch + scratchBytes
	// The error word lives in mapped pinned memory, so checking it costs
	// Sync nothing; where mapping is unavailable, in device memory that
	// Sync copies back.
	if b.errHost, b.errDev, err = b.dev.hostAlloc(errWordBytes, true); err != nil {
		if b.errHost, _, err = b.dev.hostAlloc(errWordBytes, false); err != nil {
			return err
		}
		b.errDev, b.errCopy = b.counters+4*maxCounters, true
		b.log.Warn("cuda: no mapped host memory; Sync copies the kernels' error word back")
	}
	clear(b.errHost)
	if err := b.dev.memset(b.scratch, scratchBytes+counterBytes); err != nil {
		return err
	}
	b.args = new(launchArgs)
	b.pin.Pin(b.args)
	for i := range b.args.ptrs {
		b.args.ptrs[i] = unsafe.Pointer(&b.args.vals[i])
	}
	return b.dev.sync()
}

// teardown frees everything and closes the device (driver thread).
func (b *Backend) teardown() {
	if b.dev == nil {
		return
	}
	_ = b.dev.sync()
	for p := range b.allocs {
		_ = b.dev.free(p)
	}
	clear(b.allocs)
	if b.scratch != 0 {
		_ = b.dev.free(b.scratch)
	}
	if b.stage != nil {
		_ = b.dev.hostFree(b.stage)
	}
	if b.errHost != nil {
		_ = b.dev.hostFree(b.errHost)
	}
	b.pin.Unpin()
	_ = b.dev.close()
	b.dev, b.stage, b.errHost, b.scratch = nil, nil, nil, 0
}

// exec runs one command on the driver thread. After an error, launches and
// copies are skipped until the next Sync reports it.
func (b *Backend) exec(c *cmd) {
	switch c.kind {
	case cmdCall:
		c.fn()
		if c.done != nil {
			close(c.done)
		}
		return
	case cmdSync:
		b.syncRes <- b.doSync()
		return
	}
	if b.err != nil {
		return
	}
	var err error
	switch c.kind {
	case cmdLaunch:
		err = b.doLaunch(c)
	case cmdUpload:
		err = b.doUpload(c.dptr, c.host)
	case cmdDownload:
		err = b.doDownload(c.host, c.dptr)
	case cmdMemset:
		err = b.dev.memset(c.dptr, c.n)
	case cmdFail:
		err = c.err
	}
	b.err = err
}

func (b *Backend) doLaunch(c *cmd) error {
	spec := &kernelSpecs[c.k]
	if int(c.nargs) != len(spec.params) {
		return fmt.Errorf("cuda: internal error: %s takes %d parameters, given %d", spec.name, len(spec.params), c.nargs)
	}
	a := b.args
	copy(a.vals[:c.nargs], c.args[:c.nargs])
	big := -1
	for i := range len(spec.params) {
		if spec.params[i] == 'R' {
			a.rope = *c.rope
			a.ptrs[i] = unsafe.Pointer(&a.rope)
			big = i
		}
	}
	err := b.dev.launch(c.k, c.grid, c.block, &a.ptrs[0])
	if big >= 0 {
		a.ptrs[big] = unsafe.Pointer(&a.vals[big])
	}
	return err
}

// reserve returns an offset of n free bytes in the staging buffer,
// draining the stream (and growing the buffer) when it is full.
func (b *Backend) reserve(n int) (int, error) {
	off := (b.stageOff + stageAlign - 1) &^ (stageAlign - 1)
	if off+n <= len(b.stage) {
		b.stageOff = off + n
		return off, nil
	}
	if err := b.drain(); err != nil {
		return 0, err
	}
	if n > len(b.stage) {
		size := len(b.stage)
		for size < n {
			size *= 2
		}
		size = min(size, stageMax)
		s, _, err := b.dev.hostAlloc(size, false)
		if err != nil {
			return 0, err
		}
		_ = b.dev.hostFree(b.stage)
		b.stage = s
	}
	b.stageOff = n
	return 0, nil
}

// drain waits for the stream and completes the pending downloads.
func (b *Backend) drain() error {
	err := b.dev.sync()
	if err == nil {
		for _, p := range b.pending {
			copy(p.dst, b.stage[p.off:p.off+len(p.dst)])
		}
	}
	clear(b.pending)
	b.pending = b.pending[:0]
	b.stageOff = 0
	return err
}

func (b *Backend) doUpload(dst uint64, src []byte) error {
	for off := 0; off < len(src); off += stageChunk {
		n := min(stageChunk, len(src)-off)
		o, err := b.reserve(n)
		if err != nil {
			return err
		}
		s := b.stage[o : o+n]
		copy(s, src[off:off+n])
		if err := b.dev.htod(dst+uint64(off), s); err != nil {
			return err
		}
	}
	return nil
}

func (b *Backend) doDownload(dst []byte, src uint64) error {
	for off := 0; off < len(dst); off += stageChunk {
		n := min(stageChunk, len(dst)-off)
		o, err := b.reserve(n)
		if err != nil {
			return err
		}
		if err := b.dev.dtoh(b.stage[o:o+n], src+uint64(off)); err != nil {
			return err
		}
		b.pending = append(b.pending, pendingCopy{dst: dst[off : off+n], off: o})
	}
	return nil
}

// doSync is Sync on the driver thread.
func (b *Backend) doSync() error {
	err := b.err
	b.err = nil
	if b.errCopy {
		if e := b.dev.dtoh(b.errHost[:4], b.errDev); err == nil && e != nil {
			err = e
		}
	}
	if e := b.drain(); err == nil && e != nil {
		err = e
	}
	if w := b.errHost[0]; w != 0 {
		clear(b.errHost[:4])
		if b.errCopy {
			_ = b.dev.memset(b.errDev, 4)
		}
		if err == nil && w == errIndex {
			err = errors.New("cuda: a row index was outside the weights or source (its output was left 0)")
		}
	}
	return err
}

// send queues c for the driver thread; false when the backend is closed.
func (b *Backend) send(c cmd) bool {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.closed {
		return false
	}
	b.cmds <- c
	return true
}

// call runs fn on the driver thread and waits for it.
func (b *Backend) call(fn func()) error {
	done := make(chan struct{})
	if !b.send(cmd{kind: cmdCall, fn: fn, done: done}) {
		return errClosed
	}
	<-done
	return nil
}

// fail records err for the next Sync, in order with the ops.
func (b *Backend) fail(err error) {
	b.send(cmd{kind: cmdFail, err: err})
}

// Name implements kernels.Backend: "cuda:0 NVIDIA GeForce GTX 1060 6GB".
func (b *Backend) Name() string { return b.name }

// Info implements kernels.Backend. FreeBytes is the driver's figure now;
// the CUDA context and this backend's own buffers are already out of it.
func (b *Backend) Info() kernels.Info {
	i := kernels.Info{
		Name:       b.info.name,
		TotalBytes: b.info.total,
		ComputeCap: b.info.cc,
		ReserveNote: fmt.Sprintf("FreeBytes excludes the CUDA context and other processes (%d MiB when opened) and %d MiB of kernel scratch",
			b.info.reserved>>20, (scratchBytes+counterBytes+(1<<20)-1)>>20),
	}
	_ = b.call(func() {
		free, _, err := b.dev.memInfo()
		if err == nil {
			i.FreeBytes = free
		}
	})
	return i
}

// Device describes the GPU beyond kernels.Info.
type Device struct {
	Name            string
	ComputeCap      [2]int
	Multiprocessors int
	L2Bytes         int
	TotalBytes      int64
	ContextBytes    int64  // total − free right after the context was made
	DriverCUDA      string // CUDA version the driver supports, e.g. "12.2"
	PTX             string // the PTX target loaded: "compute_52" or "compute_80"
	JIT             time.Duration
}

// Device returns the device description.
func (b *Backend) Device() Device {
	i := b.info
	return Device{Name: i.name, ComputeCap: i.cc, Multiprocessors: i.sms, L2Bytes: i.l2, TotalBytes: i.total,
		ContextBytes: i.reserved, DriverCUDA: cudaVersion(i.driver), PTX: i.ptx.target, JIT: i.jit}
}

// Supports implements kernels.Backend: F32, F16, BF16, Q8_0 and Q4_0.
func (b *Backend) Supports(t dtype.Type) bool {
	_, ok := weightKernels[t]
	return ok
}

// buffer is device memory: a root allocation or a slice of one.
type buffer struct {
	b    *Backend
	ptr  uint64
	n    int64
	root bool
}

func (x *buffer) Len() int64 { return x.n }

func (x *buffer) Slice(off, n int64) kernels.Buffer {
	if off%4 != 0 || off < 0 || n < 0 || off+n > x.n {
		panic(fmt.Sprintf("cuda: buffer slice [%d:+%d] of %d bytes", off, n, x.n))
	}
	return &buffer{b: x.b, ptr: x.ptr + uint64(off), n: n}
}

// Alloc implements kernels.Backend.
func (b *Backend) Alloc(n int64) (kernels.Buffer, error) {
	if n < 0 {
		return nil, fmt.Errorf("cuda: allocating %d bytes", n)
	}
	var (
		p   uint64
		err error
	)
	if e := b.call(func() {
		if p, err = b.dev.alloc(max(n, 1)); err != nil {
			return
		}
		b.allocs[p] = n
		if err = b.dev.memset(p, max(n, 1)); err != nil {
			_ = b.dev.free(p)
			delete(b.allocs, p)
		}
	}); e != nil {
		return nil, e
	}
	if err != nil {
		if errors.Is(err, kernels.ErrOutOfMemory) {
			return nil, err
		}
		return nil, fmt.Errorf("cuda: allocating %d bytes: %w", n, err)
	}
	return &buffer{b: b, ptr: p, n: n, root: true}, nil
}

// Free implements kernels.Backend. The memory is released once the ops
// before it have run.
func (b *Backend) Free(x kernels.Buffer) {
	d, ok := x.(*buffer)
	if !ok || d.b != b || !d.root {
		b.fail(fmt.Errorf("cuda: Free of a buffer that is not an allocation of this backend"))
		return
	}
	p := d.ptr
	b.send(cmd{kind: cmdCall, fn: func() {
		if _, ok := b.allocs[p]; !ok {
			return
		}
		delete(b.allocs, p)
		if err := b.dev.sync(); err != nil && b.err == nil {
			b.err = err
		}
		if err := b.dev.free(p); err != nil && b.err == nil {
			b.err = err
		}
	}})
	d.ptr, d.n = 0, 0
}

// Upload implements kernels.Backend: src is copied to pinned memory when
// the driver thread reaches the upload, so it must not change before Sync.
func (b *Backend) Upload(dst kernels.Buffer, src []byte) {
	c := checker{b: b, op: "Upload"}
	p := c.buf(dst, "dst", int64(len(src)))
	if c.failed() || len(src) == 0 {
		return
	}
	b.send(cmd{kind: cmdUpload, dptr: p, host: src})
}

// Download implements kernels.Backend.
func (b *Backend) Download(dst []byte, src kernels.Buffer) {
	c := checker{b: b, op: "Download"}
	p := c.buf(src, "src", int64(len(dst)))
	if c.failed() || len(dst) == 0 {
		return
	}
	b.send(cmd{kind: cmdDownload, dptr: p, host: dst})
}

// Sync implements kernels.Backend.
func (b *Backend) Sync() error {
	b.syncMu.Lock()
	defer b.syncMu.Unlock()
	if !b.send(cmd{kind: cmdSync}) {
		return errClosed
	}
	return <-b.syncRes
}

// Close implements kernels.Backend: it waits for the queued work, frees
// every buffer and releases the device. Later calls do nothing (ops) or
// return an error (Sync, Alloc).
func (b *Backend) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	close(b.cmds)
	b.mu.Unlock()
	<-b.done
	return nil
}

// Time enqueues the ops f issues between two device events and returns
// the device time between them (it waits for them).
func (b *Backend) Time(f func()) (time.Duration, error) {
	var err error
	if e := b.call(func() { err = b.dev.timerStart() }); e != nil {
		return 0, e
	}
	if err != nil {
		return 0, err
	}
	f()
	var d time.Duration
	if e := b.call(func() { d, err = b.dev.timerStop() }); e != nil {
		return 0, e
	}
	return d, err
}

// ReadBandwidth measures the device's read bandwidth in bytes per second:
// a kernel streams n bytes (16-byte loads, grid-stride) reps times.
func (b *Backend) ReadBandwidth(n int64, reps int) (float64, error) {
	n &^= 15
	buf, err := b.Alloc(n)
	if err != nil {
		return 0, err
	}
	defer b.Free(buf)
	sink, err := b.Alloc(16)
	if err != nil {
		return 0, err
	}
	defer b.Free(sink)
	p, s := buf.(*buffer).ptr, sink.(*buffer).ptr
	run := func() {
		for range reps {
			b.launch(kReadBW, grid1(b.info.sms*8), block1(256), p, uint64(n/16), s)
		}
	}
	run() // warm up
	if err := b.Sync(); err != nil {
		return 0, err
	}
	d, err := b.Time(run)
	if err != nil {
		return 0, err
	}
	if err := b.Sync(); err != nil {
		return 0, err
	}
	return float64(n) * float64(reps) / d.Seconds(), nil
}

var _ kernels.Backend = (*Backend)(nil)
