//go:build amd64 && !noasm && gc

package cpu

import xcpu "golang.org/x/sys/cpu"

// haveAVX2 reports whether the assembly kernels can run here: they use
// AVX2 integer and float instructions, FMA and the F16C conversions.
// golang.org/x/sys/cpu reads CPUID once at start-up and also checks that
// the OS saves the YMM registers (XGETBV), so a CPU with AVX2 under an OS
// that does not enable it counts as not having it.
var haveAVX2 = xcpu.X86.HasAVX && xcpu.X86.HasAVX2 && xcpu.X86.HasFMA && xcpu.X86.HasF16C

// haveVNNI reports whether the AVX-512 VNNI kernels (vnni.go) can run
// here: they use 512-bit AVX512F/BW integer instructions, 256-bit ones
// (VL) and VPDPBUSD (VNNI). x/sys/cpu counts AVX-512 only where the OS
// saves the ZMM and mask registers.
var haveVNNI = haveAVX2 && xcpu.X86.HasAVX512F && xcpu.X86.HasAVX512BW &&
	xcpu.X86.HasAVX512VL && xcpu.X86.HasAVX512VNNI

// haveAVXVNNI reports whether the AVX-VNNI kernels can run here: the AVX2
// ones with VEX-encoded VPDPBUSD on 256-bit registers, which Intel's
// 12th-generation and later desktop CPUs have without AVX-512 (and
// AMD's Zen 5 with it).
var haveAVXVNNI = haveAVX2 && xcpu.X86.HasAVXVNNI
