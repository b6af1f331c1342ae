//go:build amd64 && !noasm && gc

package cpu

import xcpu "golang.org/x/sys/cpu"

// haveAVX2 reports whether the assembly kernels can run here: they use
// AVX2 integer and float instructions, FMA and the F16C conversions.
// golang.org/x/sys/cpu reads CPUID once at start-up and also checks that
// the OS saves the YMM registers (XGETBV), so a CPU with AVX2 under an OS
// that does not enable it counts as not having it.
var haveAVX2 = xcpu.X86.HasAVX && xcpu.X86.HasAVX2 && xcpu.X86.HasFMA && xcpu.X86.HasF16C
