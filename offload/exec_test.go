package offload

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stokehq/stoke/kernels"
	"github.com/stokehq/stoke/kernels/cpu"
	"github.com/stokehq/stoke/models/dtype"
)

// randMatrix quantizes a random rows×cols matrix to t.
func randMatrix(t *testing.T, rng *rand.Rand, typ dtype.Type, rows, cols int) Matrix {
	t.Helper()
	f := make([]float32, rows*cols)
	for i := range f {
		f[i] = float32(rng.NormFloat64()) * 0.2
	}
	rb, err := typ.RowBytes(uint64(cols))
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, rows*int(rb))
	if err := dtype.Quantize(typ, f, data); err != nil {
		t.Fatal(err)
	}
	return Matrix{Type: typ, Data: data, Rows: rows, Cols: cols}
}

// layoutFor lays out the executor's regions for hot sets, as a planner
// would (the planner's own layout is tested in its package).
func layoutFor(ffns []FFN, hot [][]int32, dim int) *Plan { return layoutBatch(ffns, hot, dim, 1) }

// layoutBatch is layoutFor with scratch for batch tokens.
func layoutBatch(ffns []FFN, hot [][]int32, dim, batch int) *Plan {
	p := &Plan{Mode: ModeHybrid, Layers: make([]LayerPlan, len(ffns)), Batch: batch}
	add := func(name string, n int64) {
		off := p.TotalBytes
		p.Regions = append(p.Regions, Region{Name: name, Offset: off, Bytes: n})
		p.TotalBytes = off + (n+Align-1)/Align*Align
	}
	maxFFN := 0
	for l, f := range ffns {
		p.Layers[l].Hot = hot[l]
		h := int64(len(hot[l]))
		maxFFN = max(maxFFN, f.Up.Rows)
		if h == 0 {
			continue
		}
		if f.gated() {
			add(HotName(l, "gate"), h*int64(f.Gate.rowBytes()))
			if f.GateB != nil {
				add(HotName(l, "gate_b"), 4*h)
			}
		}
		add(HotName(l, "up"), h*int64(f.Up.rowBytes()))
		if f.UpB != nil {
			add(HotName(l, "up_b"), 4*h)
		}
		add(HotName(l, "down"), h*int64(f.DownT.rowBytes()))
	}
	d := &Desc{Dim: dim, FFN: maxFFN, QDim: dim, KVDim: dim, Vocab: 1}
	for _, s := range Scratch(d, batch, false) {
		add(s.Name, s.Bytes)
	}
	return p
}

// reference computes the FFN of x over every neuron on the host, in
// float64, with the same threshold semantics.
func reference(f *FFN, x []float32, th Threshold) []float64 {
	row := func(m *Matrix, i int) []float32 {
		rb := m.rowBytes()
		out := make([]float32, m.Cols)
		cpu.DequantizeRow(m.Type, m.Data[i*rb:(i+1)*rb], out)
		return out
	}
	dot := func(a []float32) float32 {
		s := 0.0
		for i := range a {
			s += float64(a[i]) * float64(x[i])
		}
		return float32(s)
	}
	act := func(v float32) float32 {
		a := []float32{v}
		activate(a, f.Act)
		return a[0]
	}
	silent := func(v float32) bool { return th.On && v <= th.Tau && v >= -th.Tau }
	out := make([]float64, f.DownT.Cols)
	for i := range f.Up.Rows {
		var a float32
		u := dot(row(&f.Up, i))
		if f.UpB != nil {
			u += f.UpB[i]
		}
		if f.gated() {
			g := dot(row(&f.Gate, i))
			if f.GateB != nil {
				g += f.GateB[i]
			}
			g = act(g)
			if !f.DReLU && silent(g) {
				g = 0
			}
			if f.DReLU {
				u = act(u)
			}
			a = g * u
			if f.DReLU && silent(a) {
				a = 0
			}
		} else {
			a = act(u)
			if silent(a) {
				a = 0
			}
		}
		d := row(&f.DownT, i)
		for c := range d {
			out[c] += float64(a) * float64(d[c])
		}
	}
	return out
}

// execShape is an FFN family for the executor's tests.
type execShape struct {
	name         string
	gated, dRelu bool
	act          kernels.Act
	bias         bool
	th           Threshold
}

var execShapes = []execShape{
	{"swiglu", true, false, kernels.ActSiLU, false, Threshold{}},
	{"relu-llama", true, false, kernels.ActReLU, false, Threshold{On: true}},
	{"drelu", true, true, kernels.ActReLU, false, Threshold{On: true}},
	{"opt", false, false, kernels.ActReLU, true, Threshold{On: true}},
	{"swiglu-teal", true, false, kernels.ActSiLU, true, Threshold{On: true, Tau: 0.05}},
}

// randFFN returns a random FFN of shape sh (ffn neurons of dim, weights
// of type typ, an F16 neuron-major down) and a random hot set of share of
// its neurons, ascending.
func randFFN(t *testing.T, rng *rand.Rand, typ dtype.Type, sh execShape, dim, ffn int, share float64) (FFN, []int32) {
	f := FFN{Up: randMatrix(t, rng, typ, ffn, dim), DownT: randMatrix(t, rng, dtype.F16, ffn, dim), Act: sh.act, DReLU: sh.dRelu}
	if sh.gated {
		f.Gate = randMatrix(t, rng, typ, ffn, dim)
	}
	if sh.bias {
		f.UpB = make([]float32, ffn)
		for i := range f.UpB {
			f.UpB[i] = float32(rng.NormFloat64()) * 0.1
		}
		if sh.gated {
			f.GateB = append([]float32(nil), f.UpB...)
		}
	}
	var hot []int32
	for _, i := range rng.Perm(ffn)[:int(share*float64(ffn))] {
		hot = append(hot, int32(i))
	}
	sortInt32(hot)
	return f, hot
}

// TestExecutorSplitEqualsWhole: for every weight type, FFN shape and hot
// share, the hybrid sum (device half + host half) equals the FFN over all
// neurons, with the device a capped CPU backend that holds exactly the
// plan's bytes.
func TestExecutorSplitEqualsWhole(t *testing.T) {
	pool := cpu.NewPool(2)
	defer pool.Close()
	rng := rand.New(rand.NewPCG(7, 11))
	const dim, ffn = 64, 96
	types := []dtype.Type{dtype.F32, dtype.F16, dtype.BF16, dtype.Q4_0, dtype.Q4_1, dtype.Q5_0, dtype.Q5_1, dtype.Q8_0}
	for _, typ := range types {
		for _, sh := range execShapes {
			for _, share := range []float64{0, 0.1, 0.5, 1} {
				name := fmt.Sprintf("%v/%s/%.0f%%", typ, sh.name, share*100)
				t.Run(name, func(t *testing.T) {
					f, hot := randFFN(t, rng, typ, sh, dim, ffn, share)
					plan := layoutFor([]FFN{f}, [][]int32{hot}, dim)
					dev := cpu.NewBackend(pool, plan.TotalBytes)
					arena, err := dev.Alloc(plan.TotalBytes)
					if err != nil {
						t.Fatal(err)
					}
					e, err := NewExecutor(dev, pool, plan, []FFN{f}, dim, arena)
					if err != nil {
						t.Fatal(err)
					}
					x := make([]float32, dim)
					for i := range x {
						x[i] = float32(rng.NormFloat64())
					}
					out := make([]float32, dim)
					if err := e.Run(0, x, nil, sh.th, out); err != nil {
						t.Fatal(err)
					}
					// the whole FFN on the host: the same kernels (quantized
					// types multiply Q8-quantized activations), one side
					host := layoutFor([]FFN{f}, [][]int32{nil}, dim)
					he, err := NewExecutor(cpu.NewBackend(pool, host.TotalBytes), pool, host, []FFN{f}, dim, mustAlloc(t, host.TotalBytes))
					if err != nil {
						t.Fatal(err)
					}
					whole := make([]float32, dim)
					if err := he.Run(0, x, nil, sh.th, whole); err != nil {
						t.Fatal(err)
					}
					scale := 0.0
					for _, v := range whole {
						scale = max(scale, math.Abs(float64(v)))
					}
					for c := range out {
						if d := math.Abs(float64(out[c] - whole[c])); d > 1e-5*scale {
							t.Fatalf("out[%d] = %g, whole FFN %g (diff %.2e of max %.2e)", c, out[c], whole[c], d, scale)
						}
					}
					// and the whole FFN is the formula (float weights: exact
					// activations, so only summation order differs)
					if typ == dtype.F32 {
						want := reference(&f, x, sh.th)
						for c := range whole {
							if d := math.Abs(float64(whole[c]) - want[c]); d > 1e-5*scale+1e-6 {
								t.Fatalf("whole[%d] = %g, formula %g", c, whole[c], want[c])
							}
						}
					}
					st := e.Stats()
					if st.Active != ffn || st.Hot != int64(len(hot)) {
						t.Fatalf("stats: %d active, %d hot; want %d, %d", st.Active, st.Hot, ffn, len(hot))
					}
					// the host half reads up and down rows only for
					// neurons whose activated gate is nonzero (float
					// weights: the host's gates are the formula's)
					if typ == dtype.F32 && share == 0 {
						rows := int64(ffn)
						if f.gated() {
							rows = 0
							g := make([]float32, 1)
							for i := range ffn {
								row := make([]float32, dim)
								cpu.DequantizeRow(typ, f.Gate.Data[i*f.Gate.rowBytes():(i+1)*f.Gate.rowBytes()], row)
								s := 0.0
								for c := range row {
									s += float64(row[c]) * float64(x[c])
								}
								g[0] = float32(s)
								if f.GateB != nil {
									g[0] += f.GateB[i]
								}
								activate(g, f.Act)
								if sh.th.On && !f.DReLU {
									threshold(g, sh.th.Tau)
								}
								if g[0] != 0 {
									rows++
								}
							}
						}
						want := int64(ffn)*int64(f.Gate.rowBytesIf()) + rows*int64(f.Up.rowBytes()+f.DownT.rowBytes())
						if st.HostBytes != want {
							t.Fatalf("host bytes %d, want %d (%d of %d neurons with a nonzero gate)", st.HostBytes, want, rows, ffn)
						}
					}
					if dev.Peak() > plan.TotalBytes {
						t.Fatalf("device used %d bytes, plan %d", dev.Peak(), plan.TotalBytes)
					}

					// an explicit active list splits the same way
					var active []int32
					for i := range ffn {
						if rng.IntN(3) == 0 {
							active = append(active, int32(i))
						}
					}
					e.ResetStats()
					if err := e.Run(0, x, active, sh.th, out); err != nil {
						t.Fatal(err)
					}
					st = e.Stats()
					nh := 0
					for _, i := range active {
						for _, h := range hot {
							if h == i {
								nh++
							}
						}
					}
					if st.Active != int64(len(active)) || st.Hot != int64(nh) {
						t.Fatalf("sparse stats: %d active, %d hot; want %d, %d", st.Active, st.Hot, len(active), nh)
					}
				})
			}
		}
	}
}

func mustAlloc(t *testing.T, n int64) kernels.Buffer {
	t.Helper()
	b, err := cpu.NewBackend(nil, 0).Alloc(n)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func sortInt32(a []int32) {
	for i := 1; i < len(a); i++ {
		for j := i; j > 0 && a[j] < a[j-1]; j-- {
			a[j], a[j-1] = a[j-1], a[j]
		}
	}
}

// TestExecutorRunAll: RunAll over n tokens gives each token the bits of
// Run with every neuron active, for every FFN shape and hot share, in one
// trip to the device and in several (scratch for fewer tokens than n),
// with the device a capped CPU backend holding exactly the plan's bytes.
func TestExecutorRunAll(t *testing.T) {
	pool := cpu.NewPool(2)
	defer pool.Close()
	rng := rand.New(rand.NewPCG(8, 12))
	const dim, ffn, n = 64, 96, 5
	for _, typ := range []dtype.Type{dtype.F16, dtype.Q4_0, dtype.Q8_0} {
		for _, sh := range execShapes {
			for _, share := range []float64{0, 0.5, 1} {
				for _, batch := range []int{2, n} {
					t.Run(fmt.Sprintf("%v/%s/%.0f%%/batch%d", typ, sh.name, share*100, batch), func(t *testing.T) {
						f, hot := randFFN(t, rng, typ, sh, dim, ffn, share)
						plan := layoutBatch([]FFN{f}, [][]int32{hot}, dim, batch)
						dev := cpu.NewBackend(pool, plan.TotalBytes)
						e, err := NewExecutor(dev, pool, plan, []FFN{f}, dim, mustAlloc(t, plan.TotalBytes))
						if err != nil {
							t.Fatal(err)
						}
						x := make([]float32, n*dim)
						for i := range x {
							x[i] = float32(rng.NormFloat64())
						}
						want := make([]float32, n*dim)
						for i := range n {
							if err := e.Run(0, x[i*dim:(i+1)*dim], nil, sh.th, want[i*dim:(i+1)*dim]); err != nil {
								t.Fatal(err)
							}
						}
						e.ResetStats()
						got := make([]float32, n*dim)
						if err := e.RunAll(0, x, n, sh.th, got); err != nil {
							t.Fatal(err)
						}
						for i := range got {
							if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
								t.Fatalf("token %d, out[%d] = %g, Run gives %g (must be the same bits)", i/dim, i%dim, got[i], want[i])
							}
						}
						if st := e.Stats(); st.Active != n*ffn || st.Hot != int64(n*len(hot)) {
							t.Fatalf("stats: %d active, %d hot; want %d, %d", st.Active, st.Hot, n*ffn, n*len(hot))
						}
						if dev.Peak() > plan.TotalBytes {
							t.Fatalf("device used %d bytes, plan %d", dev.Peak(), plan.TotalBytes)
						}
					})
				}
			}
		}
	}
}
