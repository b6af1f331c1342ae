// Stoke's CUDA kernels: one translation unit, compiled by `go generate`
// (gen.sh) to PTX for compute_52 and compute_80 and embedded in the Go
// package. The Go launch table (kernels.go) names every entry point here;
// a test checks the two lists and the parameter sizes agree.
#include "common.cuh"
#include "types.cuh"
#include "gemv.cuh"
#include "axpy.cuh"
#include "ops.cuh"
#include "attention.cuh"
