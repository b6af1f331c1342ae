// Package dtype describes tensor element types: their identity (the ggml type
// ids that GGUF files store), their block layout, and reference codecs.
//
// It is the one Stoke package that both models (file formats) and kernels
// (math) import, so it holds only descriptions and slow, obviously-correct
// reference conversions; fast kernels live in kernels/cpu and are tested
// against the codecs here.
package dtype

import (
	"fmt"
)

// Type is a tensor element type, numbered as ggml numbers them (the value a
// GGUF tensor-info record stores).
type Type uint32

// The ggml type ids. Gaps are ids ggml retired; they are unknown here too.
const (
	F32     Type = 0
	F16     Type = 1
	Q4_0    Type = 2
	Q4_1    Type = 3
	Q5_0    Type = 6
	Q5_1    Type = 7
	Q8_0    Type = 8
	Q8_1    Type = 9
	Q2_K    Type = 10
	Q3_K    Type = 11
	Q4_K    Type = 12
	Q5_K    Type = 13
	Q6_K    Type = 14
	Q8_K    Type = 15
	IQ2_XXS Type = 16
	IQ2_XS  Type = 17
	IQ3_XXS Type = 18
	IQ1_S   Type = 19
	IQ4_NL  Type = 20
	IQ3_S   Type = 21
	IQ2_S   Type = 22
	IQ4_XS  Type = 23
	I8      Type = 24
	I16     Type = 25
	I32     Type = 26
	I64     Type = 27
	F64     Type = 28
	IQ1_M   Type = 29
	BF16    Type = 30
	TQ1_0   Type = 34
	TQ2_0   Type = 35
	MXFP4   Type = 39
)

// QK_K is the super-block size of the K-quants.
const QK_K = 256

type info struct {
	name      string
	blockSize int // elements per block
	typeSize  int // bytes per block
	compute   bool
}

// table lists every type a GGUF file may carry. compute marks the types
// Stoke's kernels can compute with; the others can still be parsed, listed
// and copied, so `stoke inspect` works on any file.
var table = map[Type]info{
	F32:     {"F32", 1, 4, true},
	F16:     {"F16", 1, 2, true},
	BF16:    {"BF16", 1, 2, true},
	Q4_0:    {"Q4_0", 32, 2 + 16, true},
	Q4_1:    {"Q4_1", 32, 2 + 2 + 16, true},
	Q5_0:    {"Q5_0", 32, 2 + 4 + 16, true},
	Q5_1:    {"Q5_1", 32, 2 + 2 + 4 + 16, true},
	Q8_0:    {"Q8_0", 32, 2 + 32, true},
	Q8_1:    {"Q8_1", 32, 4 + 32, false},
	Q2_K:    {"Q2_K", QK_K, QK_K/16 + QK_K/4 + 2 + 2, false},
	Q3_K:    {"Q3_K", QK_K, QK_K/8 + QK_K/4 + 12 + 2, false},
	Q4_K:    {"Q4_K", QK_K, 2 + 2 + 12 + QK_K/2, true},
	Q5_K:    {"Q5_K", QK_K, 2 + 2 + 12 + QK_K/8 + QK_K/2, true},
	Q6_K:    {"Q6_K", QK_K, QK_K/2 + QK_K/4 + QK_K/16 + 2, true},
	Q8_K:    {"Q8_K", QK_K, 4 + QK_K + QK_K/16*2, true},
	IQ2_XXS: {"IQ2_XXS", QK_K, 2 + QK_K/8*2, false},
	IQ2_XS:  {"IQ2_XS", QK_K, 2 + QK_K/8*2 + QK_K/32, false},
	IQ3_XXS: {"IQ3_XXS", QK_K, 2 + QK_K/4 + QK_K/8, false},
	IQ1_S:   {"IQ1_S", QK_K, 2 + QK_K/8 + QK_K/16, false},
	IQ4_NL:  {"IQ4_NL", 32, 2 + 16, false},
	IQ3_S:   {"IQ3_S", QK_K, 2 + QK_K/4 + QK_K/8 + QK_K/32 + 4, false},
	IQ2_S:   {"IQ2_S", QK_K, 2 + QK_K/4 + QK_K/16, false},
	IQ4_XS:  {"IQ4_XS", QK_K, 2 + 2 + QK_K/64 + QK_K/2, false},
	I8:      {"I8", 1, 1, false},
	I16:     {"I16", 1, 2, false},
	I32:     {"I32", 1, 4, false},
	I64:     {"I64", 1, 8, false},
	F64:     {"F64", 1, 8, false},
	IQ1_M:   {"IQ1_M", QK_K, QK_K/8 + QK_K/16 + QK_K/32, false},
	TQ1_0:   {"TQ1_0", QK_K, 2 + (QK_K-4*QK_K/64)/5 + QK_K/64, false},
	TQ2_0:   {"TQ2_0", QK_K, 2 + QK_K/4, false},
	MXFP4:   {"MXFP4", 32, 1 + 16, false},
}

// Known reports whether t is a type a GGUF file may legitimately carry.
func (t Type) Known() bool { _, ok := table[t]; return ok }

// Computable reports whether Stoke's kernels can compute with t.
func (t Type) Computable() bool { return table[t].compute }

// BlockSize is the number of elements in one block (1 for plain types).
// It is 0 for an unknown type.
func (t Type) BlockSize() int { return table[t].blockSize }

// TypeSize is the number of bytes in one block. It is 0 for an unknown type.
func (t Type) TypeSize() int { return table[t].typeSize }

func (t Type) String() string {
	if in, ok := table[t]; ok {
		return in.name
	}
	return fmt.Sprintf("type(%d)", uint32(t))
}

// Parse returns the type whose name is s (case-insensitive, e.g. "q4_0").
func Parse(s string) (Type, error) {
	for t, in := range table {
		if equalFold(in.name, s) {
			return t, nil
		}
	}
	return 0, fmt.Errorf("dtype: unknown type %q", s)
}

func equalFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// RowBytes returns the bytes used by n elements of type t. n must be a
// multiple of the block size; the error names the problem otherwise, so a
// hostile file's shape can never produce a short read.
func (t Type) RowBytes(n uint64) (uint64, error) {
	in, ok := table[t]
	if !ok {
		return 0, fmt.Errorf("dtype: unknown type %d", uint32(t))
	}
	bs := uint64(in.blockSize)
	if n%bs != 0 {
		return 0, fmt.Errorf("dtype: %d elements is not a multiple of the %s block size %d", n, in.name, bs)
	}
	blocks := n / bs
	ts := uint64(in.typeSize)
	if blocks != 0 && blocks > ^uint64(0)/ts {
		return 0, fmt.Errorf("dtype: %d %s elements overflow a 64-bit size", n, in.name)
	}
	return blocks * ts, nil
}
