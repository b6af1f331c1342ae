package powerinfer_test

import (
	"bytes"
	"reflect"
	"testing"

	"github.com/stokehq/stoke/models/powerinfer"
)

// FuzzParse parses anything, and what parses must write and read back
// unchanged.
func FuzzParse(f *testing.F) {
	for i, share := range []float64{0, 0.3, 1} {
		_, idx, bkt := masks(i+1, 33, share, uint64(i))
		f.Add(exportSplit("generic.gpu_index", 77, idx, bkt))
		f.Add(exportSplit("moe.gpu_idx", 77, idx, make([][]int32, len(idx))))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := powerinfer.Parse(b)
		if err != nil {
			return
		}
		var buf bytes.Buffer
		if _, err := s.WriteTo(&buf); err != nil {
			t.Fatalf("parsed but cannot write: %v", err)
		}
		back, err := powerinfer.Parse(buf.Bytes())
		if err != nil {
			t.Fatalf("wrote what cannot be read: %v", err)
		}
		if !reflect.DeepEqual(back, s) {
			t.Fatal("round trip changed the split")
		}
	})
}
