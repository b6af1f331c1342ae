//go:build linux

package cuda_test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/stokehq/stoke/kernels"
	"github.com/stokehq/stoke/kernels/cpu"
	"github.com/stokehq/stoke/kernels/cuda"
	"github.com/stokehq/stoke/models/dtype"
)

// The op suite runs every Backend op on the device under test and on the
// CPU backend (kernels/cpu) with the same random inputs and compares. It
// runs on a real GPU (TestGPU, STOKE_GPU=1) and on the kernel emulator
// (TestEmulator, which needs g++).
//
// Tolerances, per op:
//   - MatMul, MatVecRows: |gpu − exact| ≤ 1e-5·Σ_c|W[r,c]·x[c]| against an
//     f64 reference on the dequantized weights (the GPU widens weights to
//     f32 and accumulates in f32); against the CPU backend, which for
//     Q8_0/Q4_0 weights quantizes x to Q8_0, that bound plus the CPU's
//     activation-quantization bound Σ_blocks Σ|w|·0.563·max|x_block|/127.
//   - AxpyRows: |gpu − exact| ≤ 1e-5·Σ_k|coef[k]·W[idx[k],c]|, and the same
//     against the CPU backend (which also dequantizes exactly).
//   - Attention: |gpu − cpu| ≤ 2e-5·max|V| (outputs are convex
//     combinations of V rows; the GPU uses an online f32 softmax).
//   - Norm, Rope, SiLU, GELU: ≤ 2 ulp-ish (4e-7 relative + 1e-30): same
//     formulas, same f64 steps, different summation order / libm.
//   - StoreKV, AddBias, AddGather, Add, Mul, ReLU, Threshold: bit-exact.
//
// Every output buffer has a guard band after it that must stay untouched,
// and the suite runs at offset 0 and 4 bytes into an allocation (16-byte
// and 4-byte aligned: the vector and scalar paths).

// TestGPU runs the suite on CUDA device 0 when STOKE_GPU=1.
func TestGPU(t *testing.T) {
	if os.Getenv("STOKE_GPU") != "1" {
		t.Skip("set STOKE_GPU=1 to run the GPU suite (needs an NVIDIA GPU)")
	}
	b, err := cuda.Open(cuda.Config{})
	if err != nil {
		t.Fatalf("STOKE_GPU=1 but: %v", err)
	}
	defer b.Close()
	d := b.Device()
	t.Logf("%s, cc %d.%d, %d SMs, driver CUDA %s, %s PTX (JIT %v), context %d MiB",
		d.Name, d.ComputeCap[0], d.ComputeCap[1], d.Multiprocessors, d.DriverCUDA, d.PTX, d.JIT, d.ContextBytes>>20)
	runSuite(t, b, false)
}

// TestEmulator runs the suite with the kernels executed by the host
// emulator: the kernels' logic and the whole backend, without a GPU.
func TestEmulator(t *testing.T) {
	lib := emulator(t)
	b, err := cuda.OpenEmulator(lib, 4, false)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	runSuite(t, b, true)
}

// TestEmulatorUnmapped: where mapped host memory is unavailable, the
// kernels' error word lives in device memory and Sync copies it back.
func TestEmulatorUnmapped(t *testing.T) {
	lib := emulator(t)
	b, err := cuda.OpenEmulator(lib, 4, true)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	pool := cpu.NewPool(1)
	defer pool.Close()
	r := &rig{t: t, gpu: b, cpu: cpu.NewBackend(pool, 0), rng: rand.New(rand.NewPCG(3, 3)), small: true}
	t.Run("Errors", r.errors)
	t.Run("AxpyRows", r.axpyRows)
}

// TestEmulatorClose: Close frees everything; afterwards ops do nothing and
// Sync and Alloc fail.
func TestEmulatorClose(t *testing.T) {
	lib := emulator(t)
	b, err := cuda.OpenEmulator(lib, 4, false)
	if err != nil {
		t.Fatal(err)
	}
	x, err := b.Alloc(64)
	if err != nil {
		t.Fatal(err)
	}
	b.Add(x, x, 16)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	b.Add(x, x, 16)
	b.Upload(x, make([]byte, 4))
	if err := b.Sync(); err == nil {
		t.Error("Sync after Close succeeded")
	}
	if _, err := b.Alloc(4); err == nil {
		t.Error("Alloc after Close succeeded")
	}
	_ = b.Info()
}

// emulator returns the emulator library, skipping where no C++ compiler
// is available and failing when the kernels do not compile as C++.
func emulator(t *testing.T) string {
	t.Helper()
	lib, err := cuda.BuildEmulator()
	if errors.Is(err, cuda.ErrNoEmulator) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	return lib
}

type rig struct {
	t     *testing.T
	gpu   kernels.Backend
	cpu   kernels.Backend
	rng   *rand.Rand
	off   int64 // offset of every buffer inside its allocation
	roots []guarded
	small bool // emulator: smaller shapes
}

// guarded is a device allocation with a guard band after the region the
// op sees.
type guarded struct {
	root kernels.Buffer
	off  int64
	n    int64
}

const guardBytes = 64

func runSuite(t *testing.T, gpu kernels.Backend, small bool) {
	pool := cpu.NewPool(2)
	defer pool.Close()
	ref := cpu.NewBackend(pool, 0)
	for _, off := range []int64{0, 4} {
		t.Run(fmt.Sprintf("off%d", off), func(t *testing.T) {
			r := &rig{t: t, gpu: gpu, cpu: ref, rng: rand.New(rand.NewPCG(1, uint64(off))), off: off, small: small}
			t.Run("Transfers", r.transfers)
			t.Run("MatMul", r.matMul)
			t.Run("MatVecRows", r.matVecRows)
			t.Run("AxpyRows", r.axpyRows)
			t.Run("Norm", r.norm)
			t.Run("Rope", r.rope)
			t.Run("StoreKV", r.storeKV)
			t.Run("Attention", r.attention)
			t.Run("Elementwise", r.elementwise)
			t.Run("Errors", r.errors)
		})
	}
}

// sub returns a rig bound to a subtest.
func (r *rig) sub(t *testing.T) *rig {
	c := *r
	c.t = t
	return &c
}

// dev allocates n bytes on the device under test, preceded by r.off bytes
// and followed by a guard band, all filled with 0xFF, then data.
func (r *rig) dev(data []byte, n int64) kernels.Buffer {
	r.t.Helper()
	total := r.off + n + guardBytes
	root, err := r.gpu.Alloc(total)
	if err != nil {
		r.t.Fatal(err)
	}
	fill := make([]byte, total)
	for i := range fill {
		fill[i] = 0xFF
	}
	clear(fill[r.off : r.off+n])
	copy(fill[r.off:], data)
	r.gpu.Upload(root, fill)
	if err := r.gpu.Sync(); err != nil {
		r.t.Fatal(err)
	}
	r.roots = append(r.roots, guarded{root, r.off, n})
	r.t.Cleanup(func() { r.gpu.Free(root) })
	return root.Slice(r.off, n)
}

// host allocates on the CPU backend.
func (r *rig) host(data []byte, n int64) kernels.Buffer {
	r.t.Helper()
	b, err := r.cpu.Alloc(n)
	if err != nil {
		r.t.Fatal(err)
	}
	r.cpu.Upload(b, data)
	return b
}

// both puts data (padded to n bytes) on both backends.
func (r *rig) both(data []byte, n int64) (g, c kernels.Buffer) {
	return r.dev(data, n), r.host(data, n)
}

func (r *rig) bothF(v []float32) (g, c kernels.Buffer) { return r.both(f32b(v), int64(4*len(v))) }
func (r *rig) bothI(v []int32) (g, c kernels.Buffer)   { return r.both(i32b(v), int64(4*len(v))) }

// read downloads n floats of g (after a Sync that must succeed) and
// checks every guard band.
func (r *rig) read(g kernels.Buffer, n int) []float32 {
	r.t.Helper()
	out := make([]byte, 4*n)
	r.gpu.Download(out, g)
	if err := r.gpu.Sync(); err != nil {
		r.t.Fatalf("gpu: %v", err)
	}
	r.checkGuards()
	return b32f(out)
}

func (r *rig) checkGuards() {
	r.t.Helper()
	for _, gb := range r.roots {
		buf := make([]byte, gb.root.Len())
		r.gpu.Download(buf, gb.root)
		if err := r.gpu.Sync(); err != nil {
			r.t.Fatal(err)
		}
		for i, v := range buf[gb.off+gb.n:] {
			if v != 0xFF {
				r.t.Fatalf("write past the end of a %d-byte buffer, at +%d", gb.n, i)
			}
		}
		for i, v := range buf[:gb.off] {
			if v != 0xFF {
				r.t.Fatalf("write before the start of a buffer, at %d", i)
			}
		}
	}
	r.roots = r.roots[:0]
}

func (r *rig) readCPU(c kernels.Buffer, n int) []float32 {
	r.t.Helper()
	out := make([]byte, 4*n)
	r.cpu.Download(out, c)
	if err := r.cpu.Sync(); err != nil {
		r.t.Fatalf("cpu: %v", err)
	}
	return b32f(out)
}

func (r *rig) floats(n int, scale float32) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = (2*r.rng.Float32() - 1) * scale
	}
	return v
}

// weights returns rows×cols random weights encoded as t, and their
// dequantized values.
func (r *rig) weights(t dtype.Type, rows, cols int) ([]byte, []float32) {
	r.t.Helper()
	src := r.floats(rows*cols, 1)
	rb, err := t.RowBytes(uint64(cols))
	if err != nil {
		r.t.Fatal(err)
	}
	w := make([]byte, rows*int(rb))
	deq := make([]float32, rows*cols)
	for i := range rows {
		row := w[i*int(rb) : (i+1)*int(rb)]
		if err := dtype.Quantize(t, src[i*cols:(i+1)*cols], row); err != nil {
			r.t.Fatal(err)
		}
		if err := dtype.Dequantize(t, row, deq[i*cols:(i+1)*cols]); err != nil {
			r.t.Fatal(err)
		}
	}
	return w, deq
}

func f32b(v []float32) []byte {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return b
}

func i32b(v []int32) []byte {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], uint32(x))
	}
	return b
}

func b32f(b []byte) []float32 {
	v := make([]float32, len(b)/4)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return v
}

// near reports whether got is within tol of want (NaNs equal NaNs).
func near(got, want, tol float64) bool {
	if math.IsNaN(want) || math.IsNaN(got) {
		return math.IsNaN(want) && math.IsNaN(got)
	}
	if math.IsInf(want, 0) {
		return got == want
	}
	return math.Abs(got-want) <= tol
}

// compare checks got against want element by element with tol(i),
// reporting the first few misses.
func (r *rig) compare(what string, got, want []float32, tol func(i int) float64) {
	r.t.Helper()
	bad := 0
	for i := range want {
		if !near(float64(got[i]), float64(want[i]), tol(i)) {
			if bad < 5 {
				r.t.Errorf("%s[%d] = %g, want %g (tolerance %g)", what, i, got[i], want[i], tol(i))
			}
			bad++
		}
	}
	if bad > 5 {
		r.t.Errorf("%s: %d of %d elements outside tolerance", what, bad, len(want))
	}
}

func exact(int) float64 { return 0 }

func ulps(want []float32) func(int) float64 {
	return func(i int) float64 { return 4e-7*math.Abs(float64(want[i])) + 1e-30 }
}

var matTypes = []dtype.Type{dtype.F32, dtype.F16, dtype.BF16, dtype.Q8_0, dtype.Q4_0}

// transfers: uploads and downloads of odd sizes, larger than the staging
// chunk, round-trip; Alloc zeroes.
func (r *rig) transfers(t *testing.T) {
	r = r.sub(t)
	sizes := []int{1, 3, 4097, 5<<20 + 3}
	if !r.small {
		sizes = append(sizes, 40<<20+1)
	}
	for _, n := range sizes {
		src := make([]byte, n)
		for i := range src {
			src[i] = byte(r.rng.Uint32())
		}
		b, err := r.gpu.Alloc(int64(n))
		if err != nil {
			t.Fatal(err)
		}
		zero := make([]byte, n)
		r.gpu.Download(zero, b)
		r.gpu.Upload(b, src)
		got := make([]byte, n)
		r.gpu.Download(got, b)
		if err := r.gpu.Sync(); err != nil {
			t.Fatal(err)
		}
		if slices.ContainsFunc(zero, func(x byte) bool { return x != 0 }) {
			t.Errorf("Alloc(%d) is not zeroed", n)
		}
		if !slices.Equal(got, src) {
			t.Errorf("round trip of %d bytes differs", n)
		}
		r.gpu.Free(b)
	}
	if err := r.gpu.Sync(); err != nil {
		t.Fatal(err)
	}
}

type matCase struct{ rows, cols, n int }

func (r *rig) matCases(t dtype.Type) []matCase {
	bs := t.BlockSize()
	// 1024 and 2304 columns give 16-byte rows for every type (the vector and
	// prefetch paths of the quantized kernels: whole tiles and a tail).
	cs := []matCase{{13, 96, 1}, {37, 1056, 1}, {20, 2080, 3}, {9, 64, 11}, {1, 32, 8}, {17, 32 * 45, 1},
		{12, 1024, 1}, {21, 2304, 1}, {5, 2304, 3}}
	if bs == 1 {
		cs = append(cs, matCase{11, 37, 1}, matCase{7, 7, 3}, matCase{30, 24, 1}, matCase{5, 1000, 9})
	}
	if !r.small {
		cs = append(cs, matCase{4096, 4096, 1}, matCase{333, 11008, 1}, matCase{64, 4096, 17})
	}
	return cs
}

// matRef returns Σ_c W[r,c]·x[c] exactly and Σ|W·x| for rows of deq.
func matRef(deq []float32, row, cols int, x []float32) (sum, abs float64) {
	for c := range cols {
		p := float64(deq[row*cols+c]) * float64(x[c])
		sum += p
		abs += math.Abs(p)
	}
	return sum, abs
}

// q8Bound is the CPU backend's activation-quantization error bound for
// a row of deq dotted with x (Q8_0 activations).
func q8Bound(deq []float32, row, cols int, x []float32) float64 {
	var b float64
	for c0 := 0; c0 < cols; c0 += 32 {
		var amax, wsum float64
		for c := c0; c < c0+32; c++ {
			amax = max(amax, math.Abs(float64(x[c])))
			wsum += math.Abs(float64(deq[row*cols+c]))
		}
		b += wsum * 0.563 * amax / 127
	}
	return b
}

func (r *rig) matMul(t *testing.T) {
	for _, ty := range matTypes {
		for _, mc := range r.matCases(ty) {
			t.Run(fmt.Sprintf("%s/%dx%dx%d", ty, mc.rows, mc.cols, mc.n), func(t *testing.T) {
				r := r.sub(t)
				w, deq := r.weights(ty, mc.rows, mc.cols)
				x := r.floats(mc.n*mc.cols, 1)
				gw, cw := r.both(w, int64(len(w)))
				gx, cx := r.bothF(x)
				gd, cd := r.bothF(make([]float32, mc.n*mc.rows))
				r.gpu.MatMul(gd, gw, ty, mc.rows, mc.cols, gx, mc.n)
				r.cpu.MatMul(cd, cw, ty, mc.rows, mc.cols, cx, mc.n)
				got, cpuOut := r.read(gd, mc.n*mc.rows), r.readCPU(cd, mc.n*mc.rows)
				want := make([]float32, len(got))
				tol := make([]float64, len(got))
				ctol := make([]float64, len(got))
				for i := range mc.n {
					xi := x[i*mc.cols : (i+1)*mc.cols]
					for row := range mc.rows {
						s, a := matRef(deq, row, mc.cols, xi)
						k := i*mc.rows + row
						want[k], tol[k] = float32(s), 1e-5*a+1e-30
						ctol[k] = 2 * tol[k]
						if ty == dtype.Q8_0 || ty == dtype.Q4_0 {
							ctol[k] += q8Bound(deq, row, mc.cols, xi)
						}
					}
				}
				r.compare("gpu vs exact", got, want, func(i int) float64 { return tol[i] })
				r.compare("gpu vs cpu", got, cpuOut, func(i int) float64 { return ctol[i] })
			})
		}
	}
}

func (r *rig) matVecRows(t *testing.T) {
	for _, ty := range matTypes {
		for _, mc := range []matCase{{50, 1056, 17}, {40, 96, 1}, {300, 64, 123}, {9, 2080, 0}, {30, 2304, 19}} {
			if ty.BlockSize() == 1 && mc.cols == 96 {
				mc.cols = 37
			}
			t.Run(fmt.Sprintf("%s/%dx%d/%d", ty, mc.rows, mc.cols, mc.n), func(t *testing.T) {
				r := r.sub(t)
				w, deq := r.weights(ty, mc.rows, mc.cols)
				x := r.floats(mc.cols, 1)
				idx := make([]int32, mc.n)
				for i := range idx {
					idx[i] = int32(r.rng.IntN(mc.rows))
				}
				gw, cw := r.both(w, int64(len(w)))
				gx, cx := r.bothF(x)
				gi, ci := r.bothI(idx)
				gd, cd := r.bothF(make([]float32, max(mc.n, 1)))
				r.gpu.MatVecRows(gd, gw, ty, mc.cols, gi, mc.n, gx)
				r.cpu.MatVecRows(cd, cw, ty, mc.cols, ci, mc.n, cx)
				got, cpuOut := r.read(gd, mc.n), r.readCPU(cd, mc.n)
				want := make([]float32, mc.n)
				tol, ctol := make([]float64, mc.n), make([]float64, mc.n)
				for k, row := range idx {
					s, a := matRef(deq, int(row), mc.cols, x)
					want[k], tol[k], ctol[k] = float32(s), 1e-5*a+1e-30, 2e-5*a+1e-30
					if ty == dtype.Q8_0 || ty == dtype.Q4_0 {
						ctol[k] += q8Bound(deq, int(row), mc.cols, x)
					}
				}
				r.compare("gpu vs exact", got, want, func(i int) float64 { return tol[i] })
				r.compare("gpu vs cpu", got, cpuOut, func(i int) float64 { return ctol[i] })
			})
		}
	}
}

func (r *rig) axpyRows(t *testing.T) {
	cases := []matCase{{50, 1056, 17}, {400, 64, 300}, {30, 2080, 0}, {8, 32, 1}, {120, 3104, 77}, {90, 2304, 70}}
	if !r.small {
		cases = append(cases, matCase{11008, 4096, 1100}, matCase{2000, 5120, 2000})
	}
	for _, ty := range matTypes {
		for _, mc := range cases {
			if ty.BlockSize() == 1 && mc.cols == 64 {
				mc.cols = 61 // the scalar path
			}
			t.Run(fmt.Sprintf("%s/%dx%d/%d", ty, mc.rows, mc.cols, mc.n), func(t *testing.T) {
				r := r.sub(t)
				w, deq := r.weights(ty, mc.rows, mc.cols)
				idx := make([]int32, mc.n)
				for i := range idx {
					idx[i] = int32(r.rng.IntN(mc.rows))
				}
				coef := r.floats(mc.n, 2)
				gw, cw := r.both(w, int64(len(w)))
				gi, ci := r.bothI(idx)
				gc, cc := r.bothF(coef)
				gd, cd := r.bothF(r.floats(mc.cols, 9)) // overwritten
				r.gpu.AxpyRows(gd, gw, ty, mc.cols, gi, mc.n, gc)
				r.cpu.AxpyRows(cd, cw, ty, mc.cols, ci, mc.n, cc)
				got, cpuOut := r.read(gd, mc.cols), r.readCPU(cd, mc.cols)
				want := make([]float32, mc.cols)
				tol := make([]float64, mc.cols)
				for c := range mc.cols {
					var s, a float64
					for k, row := range idx {
						p := float64(coef[k]) * float64(deq[int(row)*mc.cols+c])
						s += p
						a += math.Abs(p)
					}
					want[c], tol[c] = float32(s), 1e-5*a+1e-30
				}
				r.compare("gpu vs exact", got, want, func(i int) float64 { return tol[i] })
				r.compare("gpu vs cpu", got, cpuOut, func(i int) float64 { return 2 * tol[i] })
			})
		}
	}
}

func (r *rig) norm(t *testing.T) {
	for _, layer := range []bool{false, true} {
		for _, dim := range []int{1, 7, 300, 1031, 4096} {
			for _, n := range []int{1, 3} {
				for _, withB := range []bool{false, true} {
					if withB && !layer {
						continue
					}
					t.Run(fmt.Sprintf("layer=%v/%dx%d/b=%v", layer, n, dim, withB), func(t *testing.T) {
						r := r.sub(t)
						x := r.floats(n*dim, 3)
						gx, cx := r.bothF(x)
						gd, cd := r.bothF(make([]float32, n*dim))
						var gb, cb kernels.Buffer
						gw, cw := r.bothF(r.floats(dim, 2))
						if withB {
							gb, cb = r.bothF(r.floats(dim, 1))
						}
						r.gpu.Norm(gd, gx, gw, gb, dim, n, 1e-5, layer)
						r.cpu.Norm(cd, cx, cw, cb, dim, n, 1e-5, layer)
						want := r.readCPU(cd, n*dim)
						r.compare("norm", r.read(gd, n*dim), want, ulps(want))
						// in place
						r.gpu.Norm(gx, gx, gw, gb, dim, n, 1e-5, layer)
						r.compare("norm in place", r.read(gx, n*dim), want, ulps(want))
					})
				}
			}
		}
	}
}

func (r *rig) rope(t *testing.T) {
	for _, tc := range []struct {
		cfg        kernels.RoPE
		heads, n   int
		pos        int
		freqFactor bool
	}{
		{kernels.RoPE{Dims: 64, HeadDim: 64, Base: 10000}, 4, 3, 17, false},
		{kernels.RoPE{Dims: 64, HeadDim: 64, Base: 10000, NeoX: true}, 4, 3, 5000, false},
		{kernels.RoPE{Dims: 32, HeadDim: 80, Base: 1e6, Scale: 0.25}, 3, 5, 0, false},
		{kernels.RoPE{Dims: 128, HeadDim: 128, Base: 500000}, 2, 2, 40000, true},
		{kernels.RoPE{Dims: 24, HeadDim: 96, Base: 10000, NeoX: true}, 5, 1, 123, true},
	} {
		t.Run(fmt.Sprintf("%+v/%d/%d/%d", tc.cfg, tc.heads, tc.n, tc.pos), func(t *testing.T) {
			r := r.sub(t)
			cfg := tc.cfg
			if tc.freqFactor {
				cfg.FreqFactors = r.floats(cfg.Dims/2, 1)
				for i := range cfg.FreqFactors {
					cfg.FreqFactors[i] = 1 + 4*float32(math.Abs(float64(cfg.FreqFactors[i])))
				}
			}
			size := tc.n * tc.heads * cfg.HeadDim
			gx, cx := r.bothF(r.floats(size, 2))
			r.gpu.Rope(gx, &cfg, tc.heads, tc.n, tc.pos)
			r.cpu.Rope(cx, &cfg, tc.heads, tc.n, tc.pos)
			want := r.readCPU(cx, size)
			r.compare("rope", r.read(gx, size), want, func(i int) float64 { return 4e-7*math.Abs(float64(want[i])) + 4e-7 })
		})
	}
}

func (r *rig) storeKV(t *testing.T) {
	for _, ty := range []dtype.Type{dtype.F32, dtype.F16} {
		t.Run(ty.String(), func(t *testing.T) {
			r := r.sub(t)
			width, ctx, pos, n := 40, 9, 3, 4
			es := int64(4)
			if ty == dtype.F16 {
				es = 2
			}
			src := r.floats(n*width, 70000) // some overflow f16
			src[0], src[1], src[2] = 1e-6, -3e-8, 65519
			gs, cs := r.bothF(src)
			gc, cc := r.both(nil, es*int64(ctx*width))
			r.gpu.StoreKV(gc, ty, width, pos, gs, n)
			r.cpu.StoreKV(cc, ty, width, pos, cs, n)
			got := make([]byte, es*int64(ctx*width))
			want := make([]byte, len(got))
			r.gpu.Download(got, gc)
			r.cpu.Download(want, cc)
			if err := r.gpu.Sync(); err != nil {
				t.Fatal(err)
			}
			r.checkGuards()
			if err := r.cpu.Sync(); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, want) {
				t.Errorf("caches differ")
			}
		})
	}
}

func (r *rig) attention(t *testing.T) {
	for _, ty := range []dtype.Type{dtype.F32, dtype.F16} {
		cases := []struct{ n, pos, heads, kvHeads, hd int }{
			{1, 0, 2, 1, 64},
			{1, 300, 6, 2, 64},
			{5, 0, 4, 4, 80},
			{3, 40, 6, 3, 96},
			{2, 9, 2, 2, 256},
			{1, 17, 3, 1, 33},
		}
		if !r.small {
			cases = append(cases, struct{ n, pos, heads, kvHeads, hd int }{1, 1000, 8, 2, 128},
				struct{ n, pos, heads, kvHeads, hd int }{1, 4095, 32, 8, 128}, struct{ n, pos, heads, kvHeads, hd int }{64, 100, 32, 32, 128})
		}
		for _, tc := range cases {
			t.Run(fmt.Sprintf("%s/%+v", ty, tc), func(t *testing.T) {
				r := r.sub(t)
				ctx := tc.pos + tc.n
				width := tc.kvHeads * tc.hd
				es := int64(4)
				if ty == dtype.F16 {
					es = 2
				}
				gk, ck := r.both(nil, es*int64(ctx*width))
				gv, cv := r.both(nil, es*int64(ctx*width))
				kv := r.floats(ctx*width, 1)
				vv := r.floats(ctx*width, 1)
				gks, cks := r.bothF(kv)
				gvs, cvs := r.bothF(vv)
				r.gpu.StoreKV(gk, ty, width, 0, gks, ctx)
				r.gpu.StoreKV(gv, ty, width, 0, gvs, ctx)
				r.cpu.StoreKV(ck, ty, width, 0, cks, ctx)
				r.cpu.StoreKV(cv, ty, width, 0, cvs, ctx)
				size := tc.n * tc.heads * tc.hd
				gq, cq := r.bothF(r.floats(size, 1))
				gd, cd := r.bothF(make([]float32, size))
				scale := float32(1 / math.Sqrt(float64(tc.hd)))
				r.gpu.Attention(gd, gq, tc.n, tc.pos, gk, gv, ty, tc.heads, tc.kvHeads, tc.hd, scale)
				r.cpu.Attention(cd, cq, tc.n, tc.pos, ck, cv, ty, tc.heads, tc.kvHeads, tc.hd, scale)
				want := r.readCPU(cd, size)
				r.compare("attention", r.read(gd, size), want, func(int) float64 { return 2e-5 })
			})
		}
	}
}

func (r *rig) elementwise(t *testing.T) {
	r = r.sub(t)
	n := 1003
	special := []float32{0, float32(math.Copysign(0, -1)), -10, 10, -9.99, 9.99, 1e-30, -1e30, 1e30,
		float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1)), 0.5, -0.5}
	x := r.floats(n, 12)
	copy(x, special)
	y := r.floats(n, 3)
	check := func(name string, g, c kernels.Buffer, m int, tol func([]float32) func(int) float64) {
		t.Helper()
		want := r.readCPU(c, m)
		r.compare(name, r.read(g, m), want, tol(want))
	}
	exactTol := func([]float32) func(int) float64 { return exact }

	for _, act := range []kernels.Act{kernels.ActSiLU, kernels.ActGELU, kernels.ActReLU, kernels.ActNone} {
		gx, cx := r.bothF(x)
		r.gpu.Activate(gx, n, act)
		r.cpu.Activate(cx, n, act)
		check(fmt.Sprintf("activation %d", act), gx, cx, n, ulps)
	}
	gx, cx := r.bothF(x)
	r.gpu.Threshold(gx, n, 0.7)
	r.cpu.Threshold(cx, n, 0.7)
	check("threshold", gx, cx, n, exactTol)

	gx, cx = r.bothF(x)
	gy, cy := r.bothF(y)
	r.gpu.Add(gx, gy, n)
	r.cpu.Add(cx, cy, n)
	check("add", gx, cx, n, exactTol)

	gd, cd := r.bothF(make([]float32, n))
	r.gpu.Mul(gd, gx, gy, n)
	r.cpu.Mul(cd, cx, cy, n)
	check("mul", gd, cd, n, exactTol)

	width, rows := 37, 5
	gx, cx = r.bothF(x[:width*rows])
	gb, cb := r.bothF(y[:width])
	r.gpu.AddBias(gx, gb, width, rows)
	r.cpu.AddBias(cx, cb, width, rows)
	check("add bias", gx, cx, width*rows, exactTol)

	idx := make([]int32, 300)
	for i := range idx {
		idx[i] = int32(r.rng.IntN(n))
	}
	gi, ci := r.bothI(idx)
	gd, cd = r.bothF(y[:len(idx)])
	gs, cs := r.bothF(x)
	r.gpu.AddGather(gd, gs, gi, len(idx))
	r.cpu.AddGather(cd, cs, ci, len(idx))
	check("add gather", gd, cd, len(idx), exactTol)
}

// errors: bad arguments and bad indices come back from the next Sync,
// ops after them are skipped, and the Sync after that is clean.
func (r *rig) errors(t *testing.T) {
	r = r.sub(t)
	expect := func(what, substr string) {
		t.Helper()
		err := r.gpu.Sync()
		if err == nil || !strings.Contains(err.Error(), substr) {
			t.Errorf("%s: Sync = %v, want an error containing %q", what, err, substr)
		}
		if err := r.gpu.Sync(); err != nil {
			t.Errorf("%s: second Sync = %v", what, err)
		}
	}
	if r.gpu.Supports(dtype.Q6_K) || !r.gpu.Supports(dtype.Q4_0) {
		t.Errorf("Supports: Q6_K %v, Q4_0 %v", r.gpu.Supports(dtype.Q6_K), r.gpu.Supports(dtype.Q4_0))
	}
	w, _ := r.weights(dtype.F32, 4, 32)
	gw := r.dev(w, int64(len(w)))
	x := r.dev(f32b(r.floats(32, 1)), 128)
	d := r.dev(nil, 128)

	r.gpu.MatMul(d, gw, dtype.Q6_K, 4, 256, x, 1)
	expect("unsupported type", "not supported")

	r.gpu.MatMul(d, gw, dtype.F32, 5, 32, x, 1)
	expect("short weights", "w holds")

	pool := cpu.NewPool(1)
	defer pool.Close()
	foreign, _ := cpu.NewBackend(pool, 0).Alloc(128)
	r.gpu.Add(d, foreign, 4)
	expect("foreign buffer", "not a buffer of this backend")

	// an error skips later ops until Sync
	ones := r.dev(f32b([]float32{1, 1, 1, 1}), 16)
	r.gpu.MatMul(d, gw, dtype.Q6_K, 4, 256, x, 1)
	r.gpu.Add(ones, ones, 4)
	expect("skipped op", "not supported")
	if got := r.read(ones, 4); got[0] != 1 {
		t.Errorf("an op after an error ran: %v", got)
	}

	idx := r.dev(i32b([]int32{1, 7, -1}), 12)
	r.gpu.MatVecRows(d, gw, dtype.F32, 32, idx, 3, x)
	expect("row index", "outside")
	coef := r.dev(f32b([]float32{1, 1, 1}), 12)
	r.gpu.AxpyRows(d, gw, dtype.F32, 32, idx, 3, coef)
	expect("axpy index", "outside")

	if _, err := r.gpu.Alloc(1 << 50); err == nil || !strings.Contains(err.Error(), kernels.ErrOutOfMemory.Error()) {
		t.Errorf("Alloc(1 PiB) = %v, want ErrOutOfMemory", err)
	}
}
