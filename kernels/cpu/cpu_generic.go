//go:build !amd64 || noasm || !gc

package cpu

// haveAVX2 is false where no assembly is built: every kernel runs its
// pure-Go twin.
const haveAVX2 = false

// haveVNNI is false likewise: no VNNI kernels.
const haveVNNI = false

// haveAVXVNNI is false likewise: no AVX-VNNI kernels.
const haveAVXVNNI = false
