package cpu

import (
	"errors"
	"math/rand/v2"
	"testing"
	"unsafe"

	"github.com/stokehq/stoke/kernels"
	"github.com/stokehq/stoke/models/dtype"
)

func f32Bytes(x []float32) []byte {
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(x))), 4*len(x))
}

func TestBackendCap(t *testing.T) {
	p := NewPool(1)
	defer p.Close()
	b := NewBackend(p, 1000)
	x, err := b.Alloc(600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Alloc(401); !errors.Is(err, kernels.ErrOutOfMemory) {
		t.Fatalf("alloc over the cap: %v, want ErrOutOfMemory", err)
	}
	y, err := b.Alloc(400)
	if err != nil {
		t.Fatal(err)
	}
	if b.Used() != 1000 {
		t.Fatalf("used %d", b.Used())
	}
	b.Free(x)
	b.Free(y)
	if b.Used() != 0 || b.Peak() != 1000 {
		t.Fatalf("used %d peak %d", b.Used(), b.Peak())
	}
}

// TestBackendMatchesPool checks the backend's ops against the pool's
// functions they wrap, and that a bad argument becomes Sync's error.
func TestBackendMatchesPool(t *testing.T) {
	p := NewPool(2)
	defer p.Close()
	b := NewBackend(p, 0)
	rng := rand.New(rand.NewPCG(1, 2))
	const rows, cols = 40, 64
	wf := make([]float32, rows*cols)
	for i := range wf {
		wf[i] = rng.Float32()*2 - 1
	}
	wq := make([]byte, rows*rowBytes(dtype.Q8_0, cols))
	if err := dtype.Quantize(dtype.Q8_0, wf, wq); err != nil {
		t.Fatal(err)
	}
	x := make([]float32, cols)
	for i := range x {
		x[i] = rng.Float32()
	}
	want := make([]float32, rows)
	p.MatVec(want, wq, dtype.Q8_0, rows, cols, x)

	w, _ := b.Alloc(int64(len(wq)))
	xb, _ := b.Alloc(4 * cols)
	d, _ := b.Alloc(4 * rows)
	b.Upload(w, wq)
	b.Upload(xb, f32Bytes(x))
	b.MatMul(d, w, dtype.Q8_0, rows, cols, xb, 1)
	got := make([]float32, rows)
	b.Download(f32Bytes(got), d)
	if err := b.Sync(); err != nil {
		t.Fatal(err)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("row %d: %g, want %g", i, got[i], want[i])
		}
	}

	// gathered rows, then the sum of those rows
	idx := []int32{3, 0, 39, 7}
	ib, _ := b.Alloc(16)
	b.Upload(ib, unsafe.Slice((*byte)(unsafe.Pointer(&idx[0])), 16))
	b.MatVecRows(d.Slice(0, 16), w, dtype.Q8_0, cols, ib, len(idx), xb)
	g4 := make([]float32, 4)
	b.Download(f32Bytes(g4), d)
	if err := b.Sync(); err != nil {
		t.Fatal(err)
	}
	for k, i := range idx {
		if g4[k] != want[i] {
			t.Fatalf("gathered %d (row %d): %g, want %g", k, i, g4[k], want[i])
		}
	}

	// a foreign or short buffer is an error at Sync, not a panic, and
	// later ops are skipped until then
	b.MatMul(d, w, dtype.Q8_0, rows+1, cols, xb, 1)
	b.Add(d, xb, 4)
	if err := b.Sync(); err == nil {
		t.Fatal("no error for a matrix larger than its buffer")
	}
	if err := b.Sync(); err != nil {
		t.Fatalf("error not cleared: %v", err)
	}
}
