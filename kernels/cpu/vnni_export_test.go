package cpu

// SetVNNI lets the kernels use AVX-512 VNNI where the CPU has it (on =
// true, the default) or forces the AVX2 kernels, and returns a function
// that undoes the change.
var SetVNNI = setVNNI

// HaveVNNI reports whether this build and CPU have the VNNI kernels.
func HaveVNNI() bool { return haveVNNI }
