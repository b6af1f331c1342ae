package cpu

import (
	"fmt"
	"sync"
	"unsafe"

	"github.com/stokehq/stoke/kernels"
	"github.com/stokehq/stoke/models/dtype"
)

// Backend is the CPU as a kernels.Backend: buffers are host memory and
// every op runs at once on the pool (Sync only reports errors). With a
// byte cap it stands in for a device of that size, so the hybrid
// executor and the planner's accounting are tested to the byte on a
// machine without a GPU.
type Backend struct {
	pool  *Pool
	cap   int64 // bytes; ≤ 0 means unlimited
	name  string
	mu    sync.Mutex
	used  int64
	peak  int64
	err   error
	ropes map[*kernels.RoPE]*RoPE
}

// NewBackend returns a CPU backend running on pool, holding at most
// capBytes of buffers (≤ 0: no cap).
func NewBackend(pool *Pool, capBytes int64) *Backend {
	name := "cpu"
	if capBytes > 0 {
		name = fmt.Sprintf("cpu (capped to %d bytes)", capBytes)
	}
	return &Backend{pool: pool, cap: capBytes, name: name, ropes: map[*kernels.RoPE]*RoPE{}}
}

// hostBuf is a Backend buffer: a byte slice of host memory.
type hostBuf struct{ b []byte }

func (h *hostBuf) Len() int64 { return int64(len(h.b)) }

func (h *hostBuf) Slice(off, n int64) kernels.Buffer {
	if off%4 != 0 || off < 0 || n < 0 || off+n > int64(len(h.b)) {
		panic(fmt.Sprintf("cpu: buffer slice [%d:+%d] of %d bytes", off, n, len(h.b)))
	}
	return &hostBuf{h.b[off : off+n : off+n]}
}

// Name implements kernels.Backend.
func (b *Backend) Name() string { return b.name }

// Info implements kernels.Backend.
func (b *Backend) Info() kernels.Info {
	b.mu.Lock()
	defer b.mu.Unlock()
	total := b.cap
	if total <= 0 {
		total = 1 << 62
	}
	return kernels.Info{Name: b.name, TotalBytes: total, FreeBytes: total - b.used}
}

// Supports implements kernels.Backend: every computable type.
func (b *Backend) Supports(t dtype.Type) bool { return dotFor(t) }

// dotFor reports whether the row kernels handle t.
func dotFor(t dtype.Type) bool {
	switch t {
	case dtype.F32, dtype.F16, dtype.BF16, dtype.Q4_0, dtype.Q4_1, dtype.Q5_0, dtype.Q5_1, dtype.Q8_0,
		dtype.Q4_K, dtype.Q5_K, dtype.Q6_K:
		return true
	}
	return false
}

// Used is the bytes currently allocated; Peak the most ever allocated.
func (b *Backend) Used() int64 { b.mu.Lock(); defer b.mu.Unlock(); return b.used }

// Peak is the largest Used so far.
func (b *Backend) Peak() int64 { b.mu.Lock(); defer b.mu.Unlock(); return b.peak }

// Alloc implements kernels.Backend.
func (b *Backend) Alloc(n int64) (kernels.Buffer, error) {
	if n < 0 {
		return nil, fmt.Errorf("cpu: alloc of %d bytes", n)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cap > 0 && b.used+n > b.cap {
		return nil, fmt.Errorf("cpu: %d bytes requested, %d of %d in use: %w", n, b.used, b.cap, kernels.ErrOutOfMemory)
	}
	b.used += n
	b.peak = max(b.peak, b.used)
	// 4-byte elements: allocate as uint32 so float32/int32 views are aligned
	words := make([]uint32, (n+3)/4)
	var p []byte
	if len(words) > 0 {
		p = unsafe.Slice((*byte)(unsafe.Pointer(&words[0])), n)
	}
	return &hostBuf{p}, nil
}

// Free implements kernels.Backend.
func (b *Backend) Free(buf kernels.Buffer) {
	h, ok := buf.(*hostBuf)
	if !ok || h.b == nil {
		return
	}
	b.mu.Lock()
	b.used -= int64(len(h.b))
	b.mu.Unlock()
	h.b = nil
}

// Close implements kernels.Backend. Buffers are garbage collected.
func (b *Backend) Close() error { return nil }

// Sync implements kernels.Backend.
func (b *Backend) Sync() error {
	err := b.err
	b.err = nil
	return err
}

// guard turns a panic of the op it defers in (bad shapes, foreign
// buffers) into the sticky error Sync reports.
func (b *Backend) guard() {
	if r := recover(); r != nil && b.err == nil {
		b.err = fmt.Errorf("cpu backend: %v", r)
	}
}

func hostBytes(x kernels.Buffer) []byte {
	if x == nil {
		return nil
	}
	h, ok := x.(*hostBuf)
	if !ok {
		panic(fmt.Sprintf("buffer %T is not a CPU buffer", x))
	}
	return h.b
}

func f32s(x kernels.Buffer, n int) []float32 {
	p := hostBytes(x)
	if n < 0 || int64(n)*4 > int64(len(p)) {
		panic(fmt.Sprintf("%d floats wanted of a %d-byte buffer", n, len(p)))
	}
	if n == 0 {
		return nil
	}
	return unsafe.Slice((*float32)(unsafe.Pointer(&p[0])), n)
}

func i32s(x kernels.Buffer, n int) []int32 {
	return unsafe.Slice((*int32)(unsafe.Pointer(unsafe.SliceData(f32s(x, n)))), n)
}

// Upload implements kernels.Backend.
func (b *Backend) Upload(dst kernels.Buffer, src []byte) {
	if b.err != nil {
		return
	}
	defer b.guard()
	d := hostBytes(dst)
	if len(src) > len(d) {
		panic(fmt.Sprintf("upload of %d bytes into %d", len(src), len(d)))
	}
	copy(d, src)
}

// Download implements kernels.Backend.
func (b *Backend) Download(dst []byte, src kernels.Buffer) {
	if b.err != nil {
		return
	}
	defer b.guard()
	s := hostBytes(src)
	if len(dst) > len(s) {
		panic(fmt.Sprintf("download of %d bytes from %d", len(dst), len(s)))
	}
	copy(dst, s)
}

func weights(w kernels.Buffer, t dtype.Type, rows, cols int) []byte {
	p := hostBytes(w)
	rb := rowBytes(t, cols)
	if rows < 0 || int64(rows)*int64(rb) > int64(len(p)) {
		panic(fmt.Sprintf("%d rows of %d bytes in a %d-byte buffer", rows, rb, len(p)))
	}
	return p[:rows*rb]
}

// MatMul implements kernels.Backend.
func (b *Backend) MatMul(dst, w kernels.Buffer, t dtype.Type, rows, cols int, x kernels.Buffer, n int) {
	if b.err != nil {
		return
	}
	defer b.guard()
	wb := weights(w, t, rows, cols)
	d, xs := f32s(dst, n*rows), f32s(x, n*cols)
	if n == 1 {
		b.pool.MatVec(d, wb, t, rows, cols, xs)
		return
	}
	b.pool.MatMul(d, wb, t, rows, cols, xs, n)
}

// MatVecRows implements kernels.Backend.
func (b *Backend) MatVecRows(dst, w kernels.Buffer, t dtype.Type, cols int, idx kernels.Buffer, nIdx int, x kernels.Buffer) {
	if b.err != nil {
		return
	}
	defer b.guard()
	rb := rowBytes(t, cols)
	wb := hostBytes(w)
	wb = wb[:len(wb)/rb*rb]
	b.pool.MatVecRows(f32s(dst, nIdx), wb, t, cols, i32s(idx, nIdx), f32s(x, cols))
}

// AxpyRows implements kernels.Backend.
func (b *Backend) AxpyRows(dst, w kernels.Buffer, t dtype.Type, cols int, idx kernels.Buffer, nIdx int, coef kernels.Buffer) {
	if b.err != nil {
		return
	}
	defer b.guard()
	var a AxpyRows
	rb := rowBytes(t, cols)
	wb := hostBytes(w)
	wb = wb[:len(wb)/rb*rb]
	a.Do(b.pool, f32s(dst, cols), wb, t, cols, i32s(idx, nIdx), f32s(coef, nIdx))
}

// Norm implements kernels.Backend.
func (b *Backend) Norm(dst, x, w, bias kernels.Buffer, dim, n int, eps float32, layer bool) {
	if b.err != nil {
		return
	}
	defer b.guard()
	d, xs, ws := f32s(dst, n*dim), f32s(x, n*dim), f32s(w, dim)
	var bs []float32
	if layer && bias != nil {
		bs = f32s(bias, dim)
	}
	for i := range n {
		if layer {
			LayerNorm(d[i*dim:(i+1)*dim], xs[i*dim:(i+1)*dim], ws, bs, eps)
		} else {
			RMSNorm(d[i*dim:(i+1)*dim], xs[i*dim:(i+1)*dim], ws, eps)
		}
	}
}

// Rope implements kernels.Backend. The first call with a given cfg
// builds its frequency table; later calls reuse it.
func (b *Backend) Rope(x kernels.Buffer, cfg *kernels.RoPE, heads, n, pos int) {
	if b.err != nil {
		return
	}
	defer b.guard()
	r := b.ropes[cfg]
	if r == nil {
		r = NewRoPE(RoPE{Dims: cfg.Dims, HeadDim: cfg.HeadDim, Base: cfg.Base, Scale: cfg.Scale, NeoX: cfg.NeoX, FreqFactors: cfg.FreqFactors})
		b.ropes[cfg] = r
	}
	w := heads * cfg.HeadDim
	xs := f32s(x, n*w)
	for i := range n {
		r.Apply(xs[i*w:(i+1)*w], heads, pos+i)
	}
}

func kvOf(c kernels.Buffer, t dtype.Type) KV {
	p := hostBytes(c)
	switch t {
	case dtype.F32:
		return KV{F32: f32s(c, len(p)/4)}
	case dtype.F16:
		if len(p) < 2 {
			return KV{F16: []uint16{}}
		}
		return KV{F16: unsafe.Slice((*uint16)(unsafe.Pointer(&p[0])), len(p)/2)}
	}
	panic(fmt.Sprintf("KV cache of type %v", t))
}

// StoreKV implements kernels.Backend.
func (b *Backend) StoreKV(cache kernels.Buffer, t dtype.Type, width, pos int, src kernels.Buffer, n int) {
	if b.err != nil {
		return
	}
	defer b.guard()
	kvOf(cache, t).Store(pos, width, f32s(src, n*width))
}

// Attention implements kernels.Backend.
func (b *Backend) Attention(out, q kernels.Buffer, n, pos int, k, v kernels.Buffer, kvType dtype.Type, heads, kvHeads, headDim int, scale float32) {
	if b.err != nil {
		return
	}
	defer b.guard()
	w := heads * headDim
	b.pool.Attention(f32s(out, n*w), f32s(q, n*w), n, pos, kvOf(k, kvType), kvOf(v, kvType), heads, kvHeads, headDim, scale)
}

// AddBias implements kernels.Backend.
func (b *Backend) AddBias(x, bias kernels.Buffer, width, n int) {
	if b.err != nil {
		return
	}
	defer b.guard()
	xs, bs := f32s(x, n*width), f32s(bias, width)
	for i := range n {
		AddInPlace(xs[i*width:(i+1)*width], bs)
	}
}

// AddGather implements kernels.Backend.
func (b *Backend) AddGather(dst, src, idx kernels.Buffer, nIdx int) {
	if b.err != nil {
		return
	}
	defer b.guard()
	d, ix := f32s(dst, nIdx), i32s(idx, nIdx)
	s := f32s(src, len(hostBytes(src))/4)
	for k, i := range ix {
		d[k] += s[i]
	}
}

// Add implements kernels.Backend.
func (b *Backend) Add(dst, x kernels.Buffer, n int) {
	if b.err != nil {
		return
	}
	defer b.guard()
	AddInPlace(f32s(dst, n), f32s(x, n))
}

// Mul implements kernels.Backend.
func (b *Backend) Mul(dst, x, y kernels.Buffer, n int) {
	if b.err != nil {
		return
	}
	defer b.guard()
	Mul(f32s(dst, n), f32s(x, n), f32s(y, n))
}

// Activate implements kernels.Backend.
func (b *Backend) Activate(x kernels.Buffer, n int, act kernels.Act) {
	if b.err != nil {
		return
	}
	defer b.guard()
	xs := f32s(x, n)
	switch act {
	case kernels.ActSiLU:
		SiLU(xs)
	case kernels.ActGELU:
		GELU(xs)
	case kernels.ActReLU:
		ReLU(xs)
	case kernels.ActNone:
	default:
		panic(fmt.Sprintf("activation %d", act))
	}
}

// Threshold implements kernels.Backend.
func (b *Backend) Threshold(x kernels.Buffer, n int, tau float32) {
	if b.err != nil {
		return
	}
	defer b.guard()
	xs := f32s(x, n)
	for i, v := range xs {
		if v <= tau && v >= -tau {
			xs[i] = 0
		}
	}
}

var _ kernels.Backend = (*Backend)(nil)
