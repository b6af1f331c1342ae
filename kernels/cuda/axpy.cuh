// AxpyRows: dst[c] = Σ_k coef[k]·W[idx[k], c] for c < cols (dst
// overwritten): the down projection over active neuron-major rows.
//
// Grid (column tiles of AXPY_COLS, splits); split s takes the index range
// [s·rps, (s+1)·rps) and its WARPS warps take every WARPS-th row of it.
// A lane keeps 32 column sums for its tile in registers; the block adds
// its warps' sums in shared memory in warp order, and, when there are
// several splits, writes them to scratch[s·cols + c]; the last block of a
// column tile to finish (an atomic counter, reset by that block) adds the
// splits in split order. Every sum has a fixed order: results are
// deterministic.
#pragma once
#include "types.cuh"

// axpy_finish reduces the block's per-warp sums red[w][c] and writes dst
// (one split) or this split's partials, the last block adding them up.
__device__ __forceinline__ void axpy_finish(float* dst, float (*red)[AXPY_COLS], int cols, i64 col0, float* scratch,
                                            u32* counters, int* last) {
  const int t = threadIdx.x;
  float part[AXPY_COLS / (WARPS * 32)];
#pragma unroll
  for (int q = 0; q < AXPY_COLS / (WARPS * 32); q++) {
    const int c = t + q * WARPS * 32;
    float s = 0.f;
#pragma unroll
    for (int w = 0; w < WARPS; w++) s += red[w][c];
    part[q] = s;
  }
  if (gridDim.y == 1) {
#pragma unroll
    for (int q = 0; q < AXPY_COLS / (WARPS * 32); q++) {
      const i64 c = col0 + t + q * WARPS * 32;
      if (c < cols) dst[c] = part[q];
    }
    return;
  }
#pragma unroll
  for (int q = 0; q < AXPY_COLS / (WARPS * 32); q++) {
    const i64 c = col0 + t + q * WARPS * 32;
    if (c < cols) scratch[(i64)blockIdx.y * cols + c] = part[q];
  }
  __threadfence();
  __syncthreads();
  if (t == 0) *last = atomicAdd(counters + blockIdx.x, 1u) == gridDim.y - 1;
  __syncthreads();
  if (!*last) return;
#pragma unroll
  for (int q = 0; q < AXPY_COLS / (WARPS * 32); q++) {
    const i64 c = col0 + t + q * WARPS * 32;
    if (c < cols) {
      float s = 0.f;
      for (int sp = 0; sp < (int)gridDim.y; sp++) s += __ldcg(scratch + (i64)sp * cols + c);
      dst[c] = s;
    }
  }
  if (t == 0) counters[blockIdx.x] = 0;
}

template <class T>
__device__ __forceinline__ void axpy_plain(float* dst, const u8* w, i64 rb, int cols, const int* idx, int nidx, i64 nrw,
                                           const float* coef, int rps, int flags, float* scratch, u32* counters, u32* err) {
  __shared__ float red[WARPS][AXPY_COLS];
  __shared__ int last;
  const int lane = threadIdx.x & 31, wid = threadIdx.x >> 5;
  const i64 col0 = (i64)blockIdx.x * AXPY_COLS;
  const int k0 = blockIdx.y * rps, k1 = min(nidx, k0 + rps);
  const bool vec = flags & F_VEC;
  const int NV = AXPY_COLS / T::E / 32;  // vectors per lane per row tile
  const int nv = (int)(min((i64)AXPY_COLS, cols - col0) / T::E);
  float acc[32];
#pragma unroll
  for (int e = 0; e < 32; e++) acc[e] = 0.f;
  for (int k = k0 + wid; k < k1; k += WARPS) {
    const i64 r = __ldg(idx + k);
    if (r < 0 || r >= nrw) {
      if (lane == 0) *err = ERR_INDEX;
      continue;
    }
    const float cf = __ldg(coef + k);
    const u8* row = w + r * rb;
    if (vec) {
      const uint4* rv = (const uint4*)row + col0 / T::E;
      uint4 a[NV];
#pragma unroll
      for (int j = 0; j < NV; j++)
        if (32 * j + lane < nv) a[j] = ldw(rv + 32 * j + lane);
#pragma unroll
      for (int j = 0; j < NV; j++) {
        if (32 * j + lane < nv) {
          float f[T::E];
          T::dec(a[j], f);
#pragma unroll
          for (int e = 0; e < T::E; e++) acc[T::E * j + e] += cf * f[e];
        }
      }
    } else {
#pragma unroll
      for (int e = 0; e < 32; e++) {
        const i64 c = col0 + lane + 32 * e;
        if (c < cols) acc[e] += cf * T::get(row, c);
      }
    }
  }
  if (vec) {
#pragma unroll
    for (int j = 0; j < NV; j++)
#pragma unroll
      for (int e = 0; e < T::E; e++) red[wid][T::E * (32 * j + lane) + e] = acc[T::E * j + e];
  } else {
#pragma unroll
    for (int e = 0; e < 32; e++) red[wid][lane + 32 * e] = acc[e];
  }
  __syncthreads();
  axpy_finish(dst, red, cols, col0, scratch, counters, &last);
}

template <class Q>
__device__ __forceinline__ void axpy_quant(float* dst, const u8* w, i64 rb, int cols, const int* idx, int nidx, i64 nrw,
                                           const float* coef, int rps, int flags, float* scratch, u32* counters, u32* err) {
  __shared__ float red[WARPS][AXPY_COLS];
  __shared__ uint4 stage[WARPS][Q::BS * TILE / 16];
  __shared__ int last;
  const int lane = threadIdx.x & 31, wid = threadIdx.x >> 5;
  const i64 col0 = (i64)blockIdx.x * AXPY_COLS;  // = blockIdx.x · TILE blocks
  const int k0 = blockIdx.y * rps, k1 = min(nidx, k0 + rps);
  const int nbt = (int)min((i64)TILE, cols / 32 - (i64)blockIdx.x * TILE);
  const int m = lane % Q::LPB, bl = lane / Q::LPB;
  u8* s = (u8*)stage[wid];
  float acc[Q::G * Q::EPL];
#pragma unroll
  for (int e = 0; e < Q::G * Q::EPL; e++) acc[e] = 0.f;
  for (int k = k0 + wid; k < k1; k += WARPS) {
    const i64 r = __ldg(idx + k);
    if (r < 0 || r >= nrw) {
      if (lane == 0) *err = ERR_INDEX;
      continue;
    }
    const float cf = __ldg(coef + k);
    stage_bytes(s, w + r * rb + (i64)blockIdx.x * TILE * Q::BS, nbt * Q::BS, flags & F_VEC, lane);
    __syncwarp();
#pragma unroll
    for (int g = 0; g < Q::G; g++) {
      const int b = g * Q::BPG + bl;
      if (b < nbt) {
        const u8* sb = s + b * Q::BS;
        const float cd = cf * h2f(*(const u16*)sb);
        float v[Q::EPL];
        Q::vals(sb, m, v);
#pragma unroll
        for (int e = 0; e < Q::EPL; e++) acc[g * Q::EPL + e] += cd * v[e];
      }
    }
    __syncwarp();
  }
#pragma unroll
  for (int g = 0; g < Q::G; g++)
#pragma unroll
    for (int e = 0; e < Q::EPL; e++) red[wid][32 * (g * Q::BPG + bl) + Q::col(m, e)] = acc[g * Q::EPL + e];
  __syncthreads();
  axpy_finish(dst, red, cols, col0, scratch, counters, &last);
}

#define AXPY_ENTRY(KIND, T, name)                                                                                      \
  extern "C" __global__ void __launch_bounds__(WARPS * 32)                                                             \
      axpy_##name(float* dst, const u8* w, i64 rb, int cols, const int* idx, int nidx, i64 nrw, const float* coef,   \
                  int rps, int flags, float* scratch, u32* counters, u32* err) {                                       \
    KIND<T>(dst, w, rb, cols, idx, nidx, nrw, coef, rps, flags, scratch, counters, err);                              \
  }

AXPY_ENTRY(axpy_plain, TF32, f32)
AXPY_ENTRY(axpy_plain, TF16, f16)
AXPY_ENTRY(axpy_plain, TBF16, bf16)
AXPY_ENTRY(axpy_quant, TQ8_0, q8_0)
AXPY_ENTRY(axpy_quant, TQ4_0, q4_0)
