package offload

import (
	"fmt"
	"runtime"
	"time"
	"unsafe"

	"github.com/stokehq/stoke/kernels"
	"github.com/stokehq/stoke/kernels/cpu"
	"github.com/stokehq/stoke/models/dtype"
)

// Matrix is host weights: Rows rows of Cols elements of Type.
type Matrix struct {
	Type       dtype.Type
	Data       []byte
	Rows, Cols int
}

func (m *Matrix) rowBytes() int {
	rb, err := m.Type.RowBytes(uint64(m.Cols))
	if err != nil {
		return 0
	}
	return int(rb)
}

// FFN is one layer's feed-forward block as the executor computes it:
//
//	a_i = act(gate_i·x + gb_i) · (up_i·x + ub_i)      gated (SwiGLU, ReLU-llama)
//	a_i = act(gate_i·x + gb_i) · act(up_i·x + ub_i)   dReLU
//	a_i = act(up_i·x + ub_i)                          not gated (OPT)
//	out = Σ_i a_i · downT_i
//
// over the active neurons i, with a_i zeroed when |a_i| ≤ Tau (the gate
// activation is thresholded before the product, dReLU's product after it),
// exactly the engine's sparse semantics (Run takes Tau).
type FFN struct {
	Gate, Up   Matrix // Gate.Data is nil when not gated; row i is neuron i
	DownT      Matrix // neuron-major down: row i is neuron i's output column
	GateB, UpB []float32
	Act        kernels.Act
	DReLU      bool
}

func (f *FFN) gated() bool { return f.Gate.Data != nil }

// Threshold is the activation threshold of a call: with On, activations
// with |a| ≤ Tau count as silent and contribute nothing.
type Threshold struct {
	On  bool
	Tau float32
}

// Stats are the executor's counters since the last Reset.
type Stats struct {
	Active      int64         // neurons computed
	Hot         int64         // of which on the device
	BytesUp     int64         // host→device bytes (activations, index lists)
	BytesDown   int64         // device→host bytes (partial sums)
	DeviceTime  time.Duration // wall time from enqueue to the device half's Sync
	HostTime    time.Duration // wall time of the host half
	DeviceBytes int64         // weight bytes the device half read
	HostBytes   int64         // weight bytes the host half read
}

// HitRate is the share of computed neurons served from the device.
func (s Stats) HitRate() float64 {
	if s.Active == 0 {
		return 0
	}
	return float64(s.Hot) / float64(s.Active)
}

// Executor runs hybrid FFNs: each layer's hot neurons (plan.Layers[l].Hot)
// are packed into device regions, the rest stay in host memory, and a
// call computes the device half and the host half of the active set
// concurrently and sums them.
type Executor struct {
	dev    kernels.Backend
	pool   *cpu.Pool
	layers []execLayer
	dim    int

	// device scratch
	xb, out, h1, h2, idx kernels.Buffer
	// host staging
	part  []float32 // device partial, downloaded
	parts []float32 // RunAll's device partials, a trip's tokens
	hidx  []int32   // device-local active indices
	cidx  []int32   // host (cold) active indices
	allL  []int32   // 0..max hot−1
	cg    []float32 // host gate/up scratch
	cu    []float32
	axpy  cpu.AxpyRows
	stats Stats
}

type execLayer struct {
	ffn   FFN
	hot   []int32 // global ids on the device, ascending
	local []int32 // global id → device row, −1 when cold
	cold  []int32 // global ids on the host, ascending

	gate, up, down, gateB, upB kernels.Buffer
}

// NewExecutor packs each layer's hot rows from ffns into the plan's
// regions of arena (a device buffer of plan.TotalBytes) and returns the
// executor. It uploads through dev and syncs before returning.
func NewExecutor(dev kernels.Backend, pool *cpu.Pool, plan *Plan, ffns []FFN, dim int, arena kernels.Buffer) (*Executor, error) {
	if len(ffns) != len(plan.Layers) {
		return nil, fmt.Errorf("offload: %d FFNs for a plan of %d layers", len(ffns), len(plan.Layers))
	}
	region := func(name string) (kernels.Buffer, error) {
		r, ok := plan.Region(name)
		if !ok {
			return nil, fmt.Errorf("offload: the plan has no region %q", name)
		}
		if r.Offset+r.Bytes > arena.Len() {
			return nil, fmt.Errorf("offload: region %q [%d,+%d) is outside the %d-byte arena", name, r.Offset, r.Bytes, arena.Len())
		}
		return arena.Slice(r.Offset, r.Bytes), nil
	}
	e := &Executor{dev: dev, pool: pool, dim: dim, layers: make([]execLayer, len(ffns))}
	maxFFN, maxHot := 0, 0
	var staging [][]byte // kept alive until the Sync below
	for l := range ffns {
		f := ffns[l]
		lp := &plan.Layers[l]
		neurons := f.Up.Rows
		maxFFN = max(maxFFN, neurons)
		el := &e.layers[l]
		el.ffn = f
		el.hot = lp.Hot
		el.local = make([]int32, neurons)
		for i := range el.local {
			el.local[i] = -1
		}
		for k, i := range lp.Hot {
			if i < 0 || int(i) >= neurons {
				return nil, fmt.Errorf("offload: layer %d hot neuron %d of %d", l, i, neurons)
			}
			el.local[i] = int32(k)
		}
		for i, k := range el.local {
			if k < 0 {
				el.cold = append(el.cold, int32(i))
			}
		}
		if len(lp.Hot) == 0 {
			continue
		}
		maxHot = max(maxHot, len(lp.Hot))
		pack := func(part string, m *Matrix) (kernels.Buffer, error) {
			buf, err := region(HotName(l, part))
			if err != nil {
				return nil, err
			}
			rb := m.rowBytes()
			p := make([]byte, len(lp.Hot)*rb)
			for k, i := range lp.Hot {
				copy(p[k*rb:(k+1)*rb], m.Data[int(i)*rb:(int(i)+1)*rb])
			}
			if int64(len(p)) > buf.Len() {
				return nil, fmt.Errorf("offload: %s needs %d bytes, region has %d", HotName(l, part), len(p), buf.Len())
			}
			dev.Upload(buf, p)
			staging = append(staging, p)
			return buf, nil
		}
		packVec := func(part string, v []float32) (kernels.Buffer, error) {
			buf, err := region(HotName(l, part))
			if err != nil {
				return nil, err
			}
			p := make([]float32, len(lp.Hot))
			for k, i := range lp.Hot {
				p[k] = v[i]
			}
			dev.Upload(buf, f32Bytes(p))
			staging = append(staging, f32Bytes(p))
			return buf, nil
		}
		var err error
		if f.gated() {
			if el.gate, err = pack("gate", &f.Gate); err != nil {
				return nil, err
			}
			if f.GateB != nil {
				if el.gateB, err = packVec("gate_b", f.GateB); err != nil {
					return nil, err
				}
			}
		}
		if el.up, err = pack("up", &f.Up); err != nil {
			return nil, err
		}
		if f.UpB != nil {
			if el.upB, err = packVec("up_b", f.UpB); err != nil {
				return nil, err
			}
		}
		if el.down, err = pack("down", &f.DownT); err != nil {
			return nil, err
		}
	}
	var err error
	get := func(name string) kernels.Buffer {
		b, e2 := region(name)
		if e2 != nil && err == nil {
			err = e2
		}
		return b
	}
	if maxHot > 0 {
		e.xb, e.out, e.h1, e.h2, e.idx = get("scratch.xb"), get("scratch.out"), get("scratch.h1"), get("scratch.h2"), get("scratch.idx")
		if err != nil {
			return nil, err
		}
	}
	if err := dev.Sync(); err != nil {
		return nil, fmt.Errorf("offload: uploading hot neurons: %w", err)
	}
	runtime.KeepAlive(staging)
	e.part = make([]float32, dim)
	e.hidx = make([]int32, maxFFN)
	e.cidx = make([]int32, maxFFN)
	e.cg = make([]float32, maxFFN)
	e.cu = make([]float32, maxFFN)
	e.allL = make([]int32, maxHot)
	for i := range e.allL {
		e.allL[i] = int32(i)
	}
	return e, nil
}

// HasHot reports whether layer l has neurons on the device (when it has
// none, the caller's own CPU path is as good).
func (e *Executor) HasHot(l int) bool { return len(e.layers[l].hot) > 0 }

// Cold returns how many of layer l's neurons the host holds (the neurons
// the host half computes for a token that runs them all).
func (e *Executor) Cold(l int) int { return len(e.layers[l].cold) }

// Stats returns the counters.
func (e *Executor) Stats() Stats { return e.stats }

// ResetStats zeroes the counters.
func (e *Executor) ResetStats() { e.stats = Stats{} }

// Run computes layer l's FFN for one token: x is the normalised input
// (len dim), active the neurons to compute (ascending global ids; nil
// means all), out (len dim) receives Σ_i a_i·downT_i. The device half is
// enqueued first so it runs while the host computes its half.
func (e *Executor) Run(l int, x []float32, active []int32, th Threshold, out []float32) error {
	el := &e.layers[l]
	f := &el.ffn
	// split the active set by placement
	nh, nc := 0, 0
	if active == nil {
		nh = copy(e.hidx, e.allL[:len(el.hot)])
		nc = copy(e.cidx, el.cold)
	} else {
		for _, i := range active {
			if k := el.local[i]; k >= 0 {
				e.hidx[nh] = k
				nh++
			} else {
				e.cidx[nc] = i
				nc++
			}
		}
	}
	e.stats.Active += int64(nh + nc)
	e.stats.Hot += int64(nh)

	t0 := time.Now()
	dev := e.dev
	if nh > 0 {
		dev.Upload(e.xb, f32Bytes(x))
		dev.Upload(e.idx, i32Bytes(e.hidx[:nh]))
		e.stats.BytesUp += int64(4*len(x) + 4*nh)
		a := e.h1
		if f.gated() {
			dev.MatVecRows(e.h1, el.gate, f.Gate.Type, f.Gate.Cols, e.idx, nh, e.xb)
			if el.gateB != nil {
				dev.AddGather(e.h1, el.gateB, e.idx, nh)
			}
			dev.Activate(e.h1, nh, f.Act)
			if th.On && !f.DReLU {
				dev.Threshold(e.h1, nh, th.Tau)
			}
			dev.MatVecRows(e.h2, el.up, f.Up.Type, f.Up.Cols, e.idx, nh, e.xb)
			if el.upB != nil {
				dev.AddGather(e.h2, el.upB, e.idx, nh)
			}
			if f.DReLU {
				dev.Activate(e.h2, nh, f.Act)
			}
			dev.Mul(e.h1, e.h1, e.h2, nh)
		} else {
			dev.MatVecRows(e.h1, el.up, f.Up.Type, f.Up.Cols, e.idx, nh, e.xb)
			if el.upB != nil {
				dev.AddGather(e.h1, el.upB, e.idx, nh)
			}
			dev.Activate(e.h1, nh, f.Act)
			if th.On {
				dev.Threshold(e.h1, nh, th.Tau)
			}
		}
		if th.On && f.DReLU {
			dev.Threshold(a, nh, th.Tau)
		}
		dev.AxpyRows(e.out, el.down, f.DownT.Type, f.DownT.Cols, e.idx, nh, a)
		dev.Download(f32Bytes(e.part), e.out)
		e.stats.BytesDown += int64(4 * len(e.part))
		e.stats.DeviceBytes += int64(nh) * int64(f.Up.rowBytes()+f.Gate.rowBytesIf()+f.DownT.rowBytes())
	}

	// host half, concurrently with the device's
	t1 := time.Now()
	if nc > 0 {
		read := e.hostHalf(el, x, e.cidx[:nc], th, out)
		e.stats.HostBytes += int64(nc)*int64(f.Gate.rowBytesIf()) + int64(read)*int64(f.Up.rowBytes()+f.DownT.rowBytes())
	} else {
		clear(out)
	}
	e.stats.HostTime += time.Since(t1)
	if nh > 0 {
		if err := dev.Sync(); err != nil {
			return fmt.Errorf("offload: layer %d device half: %w", l, err)
		}
		e.stats.DeviceTime += time.Since(t0)
		cpu.AddInPlace(out, e.part)
	}
	return nil
}

// RunAll computes layer l's FFN over every neuron for n tokens (x: n
// normalised rows of dim, out: n rows), as n calls of Run with every
// neuron active would, for the tokens of a prompt. The device half runs
// for all the tokens at once, up to the scratch's tokens a trip: its hot
// gate and up rows in one MatMul, which reads them once for a group of
// tokens where Run reads them once per token (on a GPU, the most of a
// prompt's time when the device holds most of the layer), and one
// AxpyRows per token for the down rows. The host half runs token by token
// meanwhile, over the cold neurons.
func (e *Executor) RunAll(l int, x []float32, n int, th Threshold, out []float32) error {
	el := &e.layers[l]
	f := &el.ffn
	dim, nh, nc := e.dim, len(el.hot), len(el.cold)
	if len(x) < n*dim || len(out) < n*dim {
		return fmt.Errorf("offload: RunAll of %d tokens with %d inputs and %d outputs of %d", n, len(x), len(out), dim)
	}
	if nh == 0 {
		for i := range n {
			if err := e.Run(l, x[i*dim:(i+1)*dim], nil, th, out[i*dim:(i+1)*dim]); err != nil {
				return err
			}
		}
		return nil
	}
	step := n // tokens a trip: as many as the scratch holds
	for _, b := range []struct {
		buf   kernels.Buffer
		width int
	}{{e.xb, dim}, {e.out, dim}, {e.h1, nh}, {e.h2, nh}} {
		step = min(step, int(b.buf.Len()/(4*int64(b.width))))
	}
	if step < 1 {
		return fmt.Errorf("offload: layer %d: the device scratch holds no token of %d hot neurons", l, nh)
	}
	if len(e.parts) < step*dim {
		e.parts = make([]float32, step*dim)
	}
	dev := e.dev
	for i0 := 0; i0 < n; i0 += step {
		k := min(step, n-i0)
		xs, outs := x[i0*dim:(i0+k)*dim], out[i0*dim:(i0+k)*dim]
		e.stats.Active += int64(k * (nh + nc))
		e.stats.Hot += int64(k * nh)
		t0 := time.Now()
		dev.Upload(e.xb, f32Bytes(xs))
		dev.Upload(e.idx, i32Bytes(e.allL[:nh]))
		e.stats.BytesUp += int64(4*len(xs) + 4*nh)
		h := e.h1
		if f.gated() {
			dev.MatMul(e.h1, el.gate, f.Gate.Type, nh, f.Gate.Cols, e.xb, k)
			if el.gateB != nil {
				dev.AddBias(e.h1, el.gateB, nh, k)
			}
			dev.Activate(e.h1, k*nh, f.Act)
			if th.On && !f.DReLU {
				dev.Threshold(e.h1, k*nh, th.Tau)
			}
			dev.MatMul(e.h2, el.up, f.Up.Type, nh, f.Up.Cols, e.xb, k)
			if el.upB != nil {
				dev.AddBias(e.h2, el.upB, nh, k)
			}
			if f.DReLU {
				dev.Activate(e.h2, k*nh, f.Act)
			}
			dev.Mul(e.h1, e.h1, e.h2, k*nh)
		} else {
			dev.MatMul(e.h1, el.up, f.Up.Type, nh, f.Up.Cols, e.xb, k)
			if el.upB != nil {
				dev.AddBias(e.h1, el.upB, nh, k)
			}
			dev.Activate(e.h1, k*nh, f.Act)
			if th.On {
				dev.Threshold(e.h1, k*nh, th.Tau)
			}
		}
		if th.On && f.DReLU {
			dev.Threshold(h, k*nh, th.Tau)
		}
		for i := range k {
			dev.AxpyRows(e.out.Slice(4*int64(i*dim), 4*int64(dim)), el.down, f.DownT.Type, f.DownT.Cols, e.idx, nh,
				h.Slice(4*int64(i*nh), 4*int64(nh)))
		}
		part := e.parts[:k*dim]
		dev.Download(f32Bytes(part), e.out)
		e.stats.BytesDown += int64(4 * len(part))
		e.stats.DeviceBytes += int64(nh) * int64(f.Up.rowBytes()+f.Gate.rowBytesIf()+k*f.DownT.rowBytes())

		// host half, concurrently with the device's
		t1 := time.Now()
		for i := range k {
			o := outs[i*dim : (i+1)*dim]
			if nc == 0 {
				clear(o)
				continue
			}
			copy(e.cidx, el.cold) // hostHalf compacts its list
			read := e.hostHalf(el, xs[i*dim:(i+1)*dim], e.cidx[:nc], th, o)
			e.stats.HostBytes += int64(nc)*int64(f.Gate.rowBytesIf()) + int64(read)*int64(f.Up.rowBytes()+f.DownT.rowBytes())
		}
		e.stats.HostTime += time.Since(t1)
		if err := dev.Sync(); err != nil {
			return fmt.Errorf("offload: layer %d device half: %w", l, err)
		}
		e.stats.DeviceTime += time.Since(t0)
		cpu.AddInPlace(outs, part)
	}
	return nil
}

func (m *Matrix) rowBytesIf() int {
	if m.Data == nil {
		return 0
	}
	return m.rowBytes()
}

// hostHalf computes the FFN over the host's active neurons idx into out
// and returns how many of them it read up and down rows for: a gated
// FFN's neurons whose activated gate is 0 are left out of those
// (cpu.KeepNonzero; idx is compacted in place).
func (e *Executor) hostHalf(el *execLayer, x []float32, idx []int32, th Threshold, out []float32) int {
	f := &el.ffn
	n := len(idx)
	a := e.cg[:n]
	if f.gated() {
		e.pool.MatVecRows(a, f.Gate.Data, f.Gate.Type, f.Gate.Cols, idx, x)
		if f.GateB != nil {
			for k, i := range idx {
				a[k] += f.GateB[i]
			}
		}
		activate(a, f.Act)
		if th.On && !f.DReLU {
			threshold(a, th.Tau)
		}
		n = cpu.KeepNonzero(idx, a)
		idx, a = idx[:n], a[:n]
		u := e.cu[:n]
		e.pool.MatVecRows(u, f.Up.Data, f.Up.Type, f.Up.Cols, idx, x)
		if f.UpB != nil {
			for k, i := range idx {
				u[k] += f.UpB[i]
			}
		}
		if f.DReLU {
			activate(u, f.Act)
		}
		cpu.Mul(a, a, u)
	} else {
		e.pool.MatVecRows(a, f.Up.Data, f.Up.Type, f.Up.Cols, idx, x)
		if f.UpB != nil {
			for k, i := range idx {
				a[k] += f.UpB[i]
			}
		}
		activate(a, f.Act)
		if th.On {
			threshold(a, th.Tau)
		}
	}
	if th.On && f.DReLU {
		threshold(a, th.Tau)
	}
	e.axpy.Do(e.pool, out, f.DownT.Data, f.DownT.Type, f.DownT.Cols, idx, a)
	return n
}

func activate(x []float32, a kernels.Act) {
	switch a {
	case kernels.ActSiLU:
		cpu.SiLU(x)
	case kernels.ActGELU:
		cpu.GELU(x)
	case kernels.ActReLU:
		cpu.ReLU(x)
	}
}

func threshold(a []float32, tau float32) {
	for i, v := range a {
		if v <= tau && v >= -tau {
			a[i] = 0
		}
	}
}

func f32Bytes(x []float32) []byte {
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(x))), 4*len(x))
}

func i32Bytes(x []int32) []byte {
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(x))), 4*len(x))
}
