package cpu

// SetVNNI lets the kernels use AVX-512 VNNI where the CPU has it (on =
// true, the default) or forces the AVX2 kernels, and returns a function
// that undoes the change.
var SetVNNI = setVNNI

// HaveVNNI reports whether this build and CPU have the VNNI kernels.
func HaveVNNI() bool { return haveVNNI }

// SetAVXVNNI lets the kernels use AVX-VNNI where the CPU has it and the
// AVX-512 VNNI kernels are off (SetVNNI(false)), or forces AVX2, and
// returns a function that undoes the change.
var SetAVXVNNI = setAVXVNNI

// HaveAVXVNNI reports whether this build and CPU have the AVX-VNNI kernels.
func HaveAVXVNNI() bool { return haveAVXVNNI }
