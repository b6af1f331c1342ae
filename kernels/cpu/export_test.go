package cpu

import "github.com/stokehq/stoke/models/dtype"

// SetGeneric forces the pure-Go kernels (on = true) or re-enables the
// assembly (on = false) and returns a function that undoes the change.
var SetGeneric = setGeneric

// HaveAsm reports whether this build and CPU have the assembly kernels, so
// tests can say which implementations they compared.
func HaveAsm() bool { return haveAVX2 }

// AliasBlocks is SetBlocks without the copy: v reads the caller's blocks
// in place, so a test can put them against an unmapped page.
func (v *QVec) AliasBlocks(t dtype.Type, blocks []byte) {
	v.SetBlocks(t, blocks)
	v.blocks = blocks
}
