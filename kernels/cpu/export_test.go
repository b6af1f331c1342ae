package cpu

import "github.com/stokehq/stoke/models/dtype"

// SetGeneric forces the pure-Go kernels (on = true) or re-enables the
// assembly (on = false) and returns a function that undoes the change.
var SetGeneric = setGeneric

// SetMulti lets MatMul use the multi-input kernels (on = true, the
// default) or only the row kernels, and returns a function that undoes the
// change.
var SetMulti = setMulti

// HaveAsm reports whether this build and CPU have the assembly kernels, so
// tests can say which implementations they compared.
func HaveAsm() bool { return haveAVX2 }

// AliasBlocks is SetBlocks without the copy: v reads the caller's blocks
// in place, so a test can put them against an unmapped page.
func (v *QVec) AliasBlocks(t dtype.Type, blocks []byte) {
	v.SetBlocks(t, blocks)
	v.blocks = blocks
}

// DotRowQ8Multi returns the multi-input kernel's dot products of the row
// of weights of type t with each of vs (len(vs) one of MultiSizes(t), all
// prepared for t and of the same length, row at least that long).
func DotRowQ8Multi(t dtype.Type, row []byte, vs []*QVec) []float32 {
	var b qBatch
	b.set(t, vs)
	dst := make([]float32, len(vs))
	qdotMulti(t, dst, row, &b)
	return dst
}

// MultiSizes returns the input counts of t's integer-activation
// multi-input kernels (none if it has none).
func MultiSizes(t dtype.Type) []int { return multiSizesFor(t) }

// FenceScales moves v's float32 block scales (Q8_0 activations) into mem,
// which must hold exactly as many, so a test can put them against an
// unmapped page.
func (v *QVec) FenceScales(mem []float32) {
	copy(mem, v.d)
	v.d = mem[:len(v.d)]
}

// ScaleCount is the number of float32 block scales FenceScales needs.
func (v *QVec) ScaleCount() int { return len(v.d) }

// Q4x16Generic is dotQ4x16Generic for tests: the packed arithmetic on
// inputs already laid out by Q4x16Inputs.
var Q4x16Generic = dotQ4x16Generic

// Q4x16Inputs lays out vs (prepared for Q4_0) for the packed kernels, as
// MatMulQ4x16 does (q4x16Put).
func Q4x16Inputs(vs []*QVec) []byte {
	ni, nb := len(vs), vs[0].nb
	buf := make([]byte, nb*40*ni)
	for j, v := range vs {
		q4x16Put(buf, ni, j, v.blocks, nb)
	}
	return buf
}
