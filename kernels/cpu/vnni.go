package cpu

import "os"

// AVX-512 VNNI. Where the CPU has AVX512F, BW, VL and VNNI (haveVNNI), the
// Q4_0 and Q8_0 kernels run their VNNI versions (vnni_amd64.s, generated
// by _generate/vnni.go, where the method is): the same bits as the AVX2
// kernels, with VPDPBUSD forming each lane's integer sum in one
// instruction where AVX2 takes two or three. The row kernels (MatVec)
// work on 256-bit registers and the AVX2 layouts; the multi-input ones
// (MatMul, the Q4_0 tiles) take the inputs two by two in 512-bit
// registers, which wants a pair's activations side by side: Q4_0 batches
// interleave their inputs by 32 bytes rather than by quad (q4BatchUnit),
// Q8_0 ones by the quants of a block (q8VNNIQuants), and Q8_0 groups
// take up to eight inputs rather than two (q8VNNIMultiSizes).
//
// MatMul's eight-input Q4_0 kernels also come for two weight rows at a
// time (vnni_amd64.go): an activation piece, loaded once, serves both
// rows, and each row keeps the one-row kernel's operations and bits. A
// whole quad's nibbles and scales are decoded by VPERMW from its bytes
// (q4VDecode, q4VScales). On one thread, Q4_0 MatMul of 32 inputs by
// 512×2048 and 512×5632 matrices ran at 137 and 133 GMAC/s with two rows
// and 155 and 142 with the VPERMW decoding as well; llama's prefill went
// from 0.83× llama.cpp's speed to about 1.05× (with the SiLU and
// attention kernels, 1.1–1.2×).
//
// On the 2-core Zen 5 development machine, one thread, against AVX2: the
// Q4_0 tiles (512×8192, 8 and 32 inputs) and the eight-input kernel at
// 2048 columns ran 1.6–2× as fast, Q8_0 MatMul with 8 or 32 inputs
// 2.2–2.5×; MatVec, bound by memory bandwidth, did not change. A 256-bit
// version of the tile kernel (inputs one by one, Y registers) reached
// 90 GMAC/s where the 512-bit pairs reach 120 and AVX2 70.

// useVNNI selects the VNNI kernels where the assembly runs (useAsm). It
// starts as haveVNNI unless the environment sets STOKE_NOVNNI (to compare
// with the AVX2 kernels on a VNNI machine, as benchmarks of other packages
// do); tests switch it with setVNNI. Like useAsm it is written only
// between kernel calls.
var useVNNI = haveVNNI && os.Getenv("STOKE_NOVNNI") == ""

// setVNNI lets the kernels use VNNI where the CPU has it (on = true) or
// makes them use AVX2, and returns a function that restores the previous
// choice. It must not be called while kernels run, nor between building a
// Q4_0 batch and using it.
func setVNNI(on bool) (restore func()) {
	old := useVNNI
	useVNNI = haveVNNI && on
	return func() { useVNNI = old }
}

// q4VNNIUnit is the unit by which the VNNI kernels' Q4_0 batches
// interleave their inputs: per quad, 32 bytes (one of yA, yB, yC, yD, c,
// dx of q4Quads) of every input in turn, so that two inputs' pieces lie
// side by side in 64 bytes, one load of a 512-bit register.
const q4VNNIUnit = 32

// q4BatchUnit is the unit by which a Q4_0 batch interleaves its inputs
// for the kernels in use: q4VNNIUnit for VNNI, a whole quad for AVX2.
// Both units divide a quad, so a quad of every input is q4QuadBytes per
// input from the start of the quad either way.
func q4BatchUnit() int {
	if useVNNI {
		return q4VNNIUnit
	}
	return q4QuadBytes
}

// q8VNNIMultiSizes are the input counts of the VNNI Q8_0 multi-input
// kernels, which take the inputs two by two in 512-bit registers (four
// accumulators a pair, sixteen for eight inputs).
var q8VNNIMultiSizes = [...]int{8, 4, 2}

// q8VNNIQuants returns, in buf's memory when it is large enough, the
// quants of the Q8_0 blocks of vs interleaved as the VNNI Q8_0 kernels
// read them: per block, the 32 quants of every input in turn (block i of
// input j at 32·(i·len(vs) + j)). Their scales are the d of qBatch's
// legacy layout.
func q8VNNIQuants(buf []byte, vs []*QVec) []byte {
	nb, n := vs[0].nb, len(vs)
	buf = growBytes(buf, 32*nb*n)
	for j, v := range vs {
		for i := range nb {
			copy(buf[32*(i*n+j):32*(i*n+j)+32], v.blocks[34*i+2:34*i+34])
		}
	}
	return buf
}
