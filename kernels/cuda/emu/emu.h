// emu.h: the CUDA built-ins kernels.cu uses, for compiling it as host C++
// (-DSTOKE_EMU -include emu/emu.h). Each emulated thread is a fiber; a
// block's fibers run one at a time, switching only at barriers
// (__syncthreads, __syncwarp and every shuffle), so a kernel runs exactly
// as written, block after block. Test-only: see emu.cpp and emu_test.go.
#pragma once
#define _GNU_SOURCE 1
#include <math.h>
#include <stdint.h>
#include <string.h>

struct dim3 {
  unsigned x, y, z;
};
struct uint4 {
  unsigned x, y, z, w;
};
struct float4 {
  float x, y, z, w;
};

extern dim3 threadIdx, blockIdx, blockDim, gridDim;

#define __global__
#define __device__
#define __forceinline__ inline
#define __restrict__ __restrict
#define __launch_bounds__(...)
#define __shared__ static

void emu_sync_warp();
void emu_sync_block();
void emu_xchg_put(int lane, uint64_t v);
uint64_t emu_xchg_get(int lane);

inline void __syncthreads() { emu_sync_block(); }
inline void __syncwarp(unsigned mask = 0xffffffffu) { (void)mask; emu_sync_warp(); }
inline void __threadfence() {}

template <class T>
inline T emu_shfl(T v, int src) {
  uint64_t b = 0;
  memcpy(&b, &v, sizeof v);
  emu_xchg_put(threadIdx.x & 31, b);
  emu_sync_warp();
  b = emu_xchg_get(src & 31);
  emu_sync_warp();
  T r;
  memcpy(&r, &b, sizeof r);
  return r;
}
template <class T>
inline T __shfl_xor_sync(unsigned, T v, int o) { return emu_shfl(v, (int)(threadIdx.x & 31) ^ o); }
template <class T>
inline T __shfl_sync(unsigned, T v, int src) { return emu_shfl(v, src); }

template <class T>
inline T __ldg(const T* p) { return *p; }
template <class T>
inline T __ldcs(const T* p) { return *p; }
template <class T>
inline T __ldcg(const T* p) { return *p; }

inline unsigned atomicAdd(unsigned* p, unsigned v) {
  unsigned o = *p;
  *p = o + v;
  return o;
}

inline float __uint_as_float(unsigned u) { float f; memcpy(&f, &u, 4); return f; }
inline float __int_as_float(int u) { float f; memcpy(&f, &u, 4); return f; }
inline unsigned __float_as_uint(float f) { unsigned u; memcpy(&u, &f, 4); return u; }
inline unsigned __byte_perm(unsigned x, unsigned y, unsigned s) {
  const uint64_t b = (uint64_t)y << 32 | x;
  unsigned r = 0;
  for (int i = 0; i < 4; i++) r |= (unsigned)(b >> (8 * ((s >> (4 * i)) & 7)) & 0xff) << (8 * i);
  return r;
}
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fadd_rn(float a, float b) { return a + b; }
inline double __dmul_rn(double a, double b) { return a * b; }
inline double __dadd_rn(double a, double b) { return a + b; }
inline float4 make_float4(float a, float b, float c, float d) { return float4{a, b, c, d}; }
inline int min(int a, int b) { return a < b ? a : b; }
inline long long min(long long a, long long b) { return a < b ? a : b; }

float emu_h2f(unsigned short h);
unsigned short emu_f2h(float f);
