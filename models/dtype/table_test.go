package dtype

import "testing"

// TestTable pins every type's ggml id, block size and block bytes to the
// values in ggml's ggml.h (enum ggml_type) and ggml-common.h (the
// static_assert'ed block structs), written out here as plain numbers.
func TestTable(t *testing.T) {
	want := []struct {
		typ         Type
		id          uint32
		name        string
		block, size int
	}{
		{F32, 0, "F32", 1, 4},
		{F16, 1, "F16", 1, 2},
		{Q4_0, 2, "Q4_0", 32, 18},
		{Q4_1, 3, "Q4_1", 32, 20},
		{Q5_0, 6, "Q5_0", 32, 22},
		{Q5_1, 7, "Q5_1", 32, 24},
		{Q8_0, 8, "Q8_0", 32, 34},
		{Q8_1, 9, "Q8_1", 32, 36},
		{Q2_K, 10, "Q2_K", 256, 84},
		{Q3_K, 11, "Q3_K", 256, 110},
		{Q4_K, 12, "Q4_K", 256, 144},
		{Q5_K, 13, "Q5_K", 256, 176},
		{Q6_K, 14, "Q6_K", 256, 210},
		{Q8_K, 15, "Q8_K", 256, 292},
		{IQ2_XXS, 16, "IQ2_XXS", 256, 66},
		{IQ2_XS, 17, "IQ2_XS", 256, 74},
		{IQ3_XXS, 18, "IQ3_XXS", 256, 98},
		{IQ1_S, 19, "IQ1_S", 256, 50},
		{IQ4_NL, 20, "IQ4_NL", 32, 18},
		{IQ3_S, 21, "IQ3_S", 256, 110},
		{IQ2_S, 22, "IQ2_S", 256, 82},
		{IQ4_XS, 23, "IQ4_XS", 256, 136},
		{I8, 24, "I8", 1, 1},
		{I16, 25, "I16", 1, 2},
		{I32, 26, "I32", 1, 4},
		{I64, 27, "I64", 1, 8},
		{F64, 28, "F64", 1, 8},
		{IQ1_M, 29, "IQ1_M", 256, 56},
		{BF16, 30, "BF16", 1, 2},
		{TQ1_0, 34, "TQ1_0", 256, 54},
		{TQ2_0, 35, "TQ2_0", 256, 66},
		{MXFP4, 39, "MXFP4", 32, 17},
	}
	if len(want) != len(table) {
		t.Errorf("table has %d types, want %d", len(table), len(want))
	}
	for _, w := range want {
		if uint32(w.typ) != w.id || w.typ.String() != w.name || w.typ.BlockSize() != w.block || w.typ.TypeSize() != w.size {
			t.Errorf("%s: id %d block %d size %d, want id %d %s block %d size %d",
				w.typ, uint32(w.typ), w.typ.BlockSize(), w.typ.TypeSize(), w.id, w.name, w.block, w.size)
		}
	}
	for _, id := range []uint32{4, 5, 31, 32, 33, 36, 37, 38} { // ids ggml retired
		if Type(id).Known() {
			t.Errorf("retired id %d is Known", id)
		}
	}
}
