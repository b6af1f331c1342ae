package dtype_test

import (
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/stokehq/stoke/models/dtype"
	"github.com/stokehq/stoke/models/gguf"
)

// sharedModels finds the shared model folder: $STOKE_SHARED/models, or
// ../shared/models beside the checkout; the test skips without it.
func sharedModels(t *testing.T) string {
	t.Helper()
	dir := filepath.Join("..", "..", "..", "shared", "models")
	if s := os.Getenv("STOKE_SHARED"); s != "" {
		dir = filepath.Join(s, "models")
	}
	if _, err := os.Stat(filepath.Join(dir, "stories260K.gguf")); err != nil {
		t.Skipf("shared models not found (set STOKE_SHARED): %v", err)
	}
	return dir
}

func open(t *testing.T, path string) *gguf.File {
	t.Helper()
	f, err := gguf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// TestRealFiles: the derived stories260K files hold the F32 weights of
// stories260K.gguf converted by real ggml (ggml_quantize_chunk for Q8_0 and
// Q4_0, ggml_fp32_to_fp16_row for F16). Quantize of the F32 weights must
// reproduce their bytes exactly, and Dequantize of their bytes must be
// close to the F32 weights.
func TestRealFiles(t *testing.T) {
	dir := sharedModels(t)
	base := open(t, filepath.Join(dir, "stories260K.gguf"))
	for _, c := range []struct {
		file string
		typ  dtype.Type
		tol  float64 // max |error| per block as a fraction of the block's largest magnitude
	}{
		{"stories260K-q8_0.gguf", dtype.Q8_0, 0.6 / 127},
		{"stories260K-q4_0.gguf", dtype.Q4_0, 0.13},
		{"stories260K-f16.gguf", dtype.F16, 1.0 / 2048},
	} {
		t.Run(c.typ.String(), func(t *testing.T) {
			path := filepath.Join(dir, "derived", c.file)
			if _, err := os.Stat(path); err != nil {
				t.Skipf("%s not found", path)
			}
			f := open(t, path)
			converted := 0
			for i := range f.Tensors {
				ti := &f.Tensors[i]
				bi, ok := base.Tensor(ti.Name)
				if !ok || bi.Type != dtype.F32 {
					t.Fatalf("%s: no F32 tensor %q in the base file", c.file, ti.Name)
				}
				w := f32s(base.TensorData(bi))
				got := f.TensorData(ti)
				if ti.Type == dtype.F32 {
					if string(got) != string(base.TensorData(bi)) {
						t.Errorf("%s: F32 tensor differs from the base", ti.Name)
					}
					continue
				}
				if ti.Type != c.typ {
					t.Fatalf("%s: type %s, want %s or F32", ti.Name, ti.Type, c.typ)
				}
				converted++
				mine := make([]byte, len(got))
				if err := dtype.Quantize(ti.Type, w, mine); err != nil {
					t.Fatal(err)
				}
				if string(mine) != string(got) {
					ts := ti.Type.TypeSize()
					for b := 0; b < len(got)/ts; b++ {
						if string(mine[b*ts:(b+1)*ts]) != string(got[b*ts:(b+1)*ts]) {
							t.Errorf("%s: Quantize differs from ggml at block %d:\n mine % x\n ggml % x", ti.Name, b, mine[b*ts:(b+1)*ts], got[b*ts:(b+1)*ts])
							break
						}
					}
				}
				back := make([]float32, len(w))
				if err := dtype.Dequantize(ti.Type, got, back); err != nil {
					t.Fatal(err)
				}
				bs := ti.Type.BlockSize()
				for b := 0; b < len(w); b += bs {
					var amax, emax float64
					for k := b; k < b+bs; k++ {
						amax = math.Max(amax, math.Abs(float64(w[k])))
						emax = math.Max(emax, math.Abs(float64(w[k])-float64(back[k])))
					}
					if emax > c.tol*amax+0x1p-25 {
						t.Fatalf("%s block at %d: dequantized error %g, block max %g", ti.Name, b, emax, amax)
					}
				}
			}
			if converted == 0 {
				t.Fatalf("%s holds no %s tensors", c.file, c.typ)
			}
			t.Logf("%s: %d %s tensors reproduced byte for byte", c.file, converted, c.typ)
		})
	}
}

func f32s(b []byte) []float32 {
	x := make([]float32, len(b)/4)
	for i := range x {
		x[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return x
}
