// Shared definitions for Stoke's CUDA kernels (included by kernels.cu).
//
// Rules every kernel follows, because the users' cards set them: Maxwell
// (sm_52) has no f16 arithmetic and consumer Pascal runs it at 1/64 rate,
// so half-precision and quantized values are widened to f32 (cvt only) and
// everything accumulates in f32 (or f64 where the CPU reference does).
// There is no dp4a and no tensor-core instruction in this source; code that
// uses them must sit under `#if __CUDA_ARCH__ >= 610` / `>= 700` and the
// compute_52 PTX test keeps the baseline free of them.
//
// The same source also compiles as host C++ under STOKE_EMU (emu/emu.h
// supplies the CUDA built-ins), which is how the test suite runs the
// kernels without a GPU.
#pragma once

typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef long long i64;

#define FULL_MASK 0xffffffffu

// WARPS is the warps per block of the mat-vec and AxpyRows kernels: the Go
// side launches them with blockDim.x = 32·WARPS.
#define WARPS 8
// TILE is the number of quantized blocks (of 32 values) a warp stages in
// shared memory at a time.
#define TILE 32
// AXPY_COLS is the columns of one AxpyRows tile (one per blockIdx.x).
#define AXPY_COLS 1024

// Flags of the mat-vec kernels, computed on the host.
#define F_VEC 1  // weight rows and base are 16-byte aligned: vector loads
#define F_XAL 2  // x is 16-byte aligned (and each input's start too)

// ERR_INDEX is written to the error word when a gathered row index is
// outside the weights; the row is skipped (its output is 0).
#define ERR_INDEX 1u

#ifndef INFINITY
#define INFINITY __int_as_float(0x7f800000)
#endif

// h2f widens an IEEE binary16 value (a conversion, not f16 arithmetic).
__device__ __forceinline__ float h2f(u16 h) {
#ifdef STOKE_EMU
  return emu_h2f(h);
#else
  float f;
  asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
  return f;
#endif
}

// f2h narrows to binary16, rounding to nearest even.
__device__ __forceinline__ u16 f2h(float f) {
#ifdef STOKE_EMU
  return emu_f2h(f);
#else
  u16 h;
  asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f));
  return h;
#endif
}

// bf2f widens a bfloat16 value.
__device__ __forceinline__ float bf2f(u16 h) { return __uint_as_float((u32)h << 16); }

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(FULL_MASK, v, o);
  return v;
}

__device__ __forceinline__ double warp_sum_d(double v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(FULL_MASK, v, o);
  return v;
}

// ldw loads 16 bytes of weights: read once per call, so evict-first.
__device__ __forceinline__ uint4 ldw(const uint4* p) { return __ldcs(p); }

// ldx4 loads x[0..3] (activations, re-read by every row: read-only cache),
// as one vector when x is 16-byte aligned.
__device__ __forceinline__ float4 ldx4(const float* p, bool al) {
  if (al) return __ldg((const float4*)p);
  return make_float4(__ldg(p), __ldg(p + 1), __ldg(p + 2), __ldg(p + 3));
}

// u8tof returns byte k of q plus 2^23 as a float (exact): the integer is
// placed in the mantissa of 2^23 by one byte permute, so the conversion
// costs a permute and the caller's subtraction instead of an I2F.
#define BYTE_F(q, k) __int_as_float((int)__byte_perm((q), 0x4B000000u, 0x7540u | (k)))

// ld32h loads 4 bytes from a 2-byte-aligned address (two halfword loads).
__device__ __forceinline__ u32 ld32h(const u8* p) {
  const u16* h = (const u16*)p;
  return (u32)h[0] | ((u32)h[1] << 16);
}

// stage_bytes copies n bytes (n even) of one warp's tile from global memory
// to shared memory s: 16-byte loads when vec (g and s 16-byte aligned),
// halfword loads for the rest.
__device__ __forceinline__ void stage_bytes(u8* s, const u8* g, int n, bool vec, int lane) {
  int done = 0;
  if (vec) {
    const int nv = n >> 4;
    for (int j = lane; j < nv; j += 32) ((uint4*)s)[j] = ldw((const uint4*)g + j);
    done = nv << 4;
  }
  for (int j = (done >> 1) + lane; j < (n >> 1); j += 32) ((u16*)s)[j] = __ldg((const u16*)g + j);
}
