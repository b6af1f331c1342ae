package offload

import (
	"math"
	"math/rand/v2"
	"os"
	"testing"

	"github.com/stokehq/stoke/kernels"
	"github.com/stokehq/stoke/kernels/cpu"
	"github.com/stokehq/stoke/kernels/cuda"
	"github.com/stokehq/stoke/models/dtype"
)

// openGPU opens the CUDA device for STOKE_GPU=1 runs and skips otherwise.
func openGPU(t *testing.T) *cuda.Backend {
	t.Helper()
	if os.Getenv("STOKE_GPU") != "1" {
		t.Skip("GPU tests run with STOKE_GPU=1 on a machine with an NVIDIA GPU")
	}
	b, err := cuda.Open(cuda.Config{})
	if err != nil {
		t.Fatalf("STOKE_GPU=1 but no GPU: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// TestExecutorOnGPU runs the hybrid FFN with CUDA as the device against
// the whole FFN on the host, for the types the GPU multiplies, at several
// hot shares, dense and with an active list. The GPU sums in another
// order (and widens f16 and quantized weights to f32 on old cards), so
// the tolerance is 1e-4 of the output's largest magnitude for float
// weights; for quantized ones the host also quantizes the activations to
// Q8 blocks (the GPU need not), which moves the sums by up to ~1%.
func TestExecutorOnGPU(t *testing.T) {
	g := openGPU(t)
	pool := cpu.NewPool(0)
	defer pool.Close()
	rng := rand.New(rand.NewPCG(3, 5))
	const dim, ffn = 512, 1536
	for _, typ := range []dtype.Type{dtype.F32, dtype.F16, dtype.BF16, dtype.Q8_0, dtype.Q4_0} {
		if !g.Supports(typ) {
			t.Logf("%v: not supported by %s", typ, g.Name())
			continue
		}
		for _, share := range []float64{0.1, 0.5, 1} {
			f := FFN{Gate: randMatrix(t, rng, typ, ffn, dim), Up: randMatrix(t, rng, typ, ffn, dim),
				DownT: randMatrix(t, rng, dtype.F16, ffn, dim), Act: kernels.ActReLU}
			var hot []int32
			for _, i := range rng.Perm(ffn)[:int(share*ffn)] {
				hot = append(hot, int32(i))
			}
			sortInt32(hot)
			plan := layoutFor([]FFN{f}, [][]int32{hot}, dim)
			arena, err := g.Alloc(plan.TotalBytes)
			if err != nil {
				t.Fatal(err)
			}
			e, err := NewExecutor(g, pool, plan, []FFN{f}, dim, arena)
			if err != nil {
				t.Fatal(err)
			}
			host := layoutFor([]FFN{f}, [][]int32{nil}, dim)
			he, err := NewExecutor(cpu.NewBackend(pool, 0), pool, host, []FFN{f}, dim, mustAlloc(t, host.TotalBytes))
			if err != nil {
				t.Fatal(err)
			}
			x := make([]float32, dim)
			for i := range x {
				x[i] = float32(rng.NormFloat64())
			}
			var active []int32
			for i := range ffn {
				if rng.IntN(4) == 0 {
					active = append(active, int32(i))
				}
			}
			th := Threshold{On: true}
			for _, act := range [][]int32{nil, active} {
				got, want := make([]float32, dim), make([]float32, dim)
				if err := e.Run(0, x, act, th, got); err != nil {
					t.Fatal(err)
				}
				if err := he.Run(0, x, act, th, want); err != nil {
					t.Fatal(err)
				}
				scale := 0.0
				for _, v := range want {
					scale = max(scale, math.Abs(float64(v)))
				}
				tol := 1e-4
				if typ.BlockSize() > 1 {
					tol = 1e-2
				}
				for c := range got {
					if d := math.Abs(float64(got[c] - want[c])); d > tol*scale {
						t.Fatalf("%v, %.0f%% hot, active %v: out[%d] = %g, host %g", typ, 100*share, act != nil, c, got[c], want[c])
					}
				}
			}
			g.Free(arena)
		}
	}
}
