// Mat-vec: dst[i·dstride + k] = Σ_c W[r_k, c]·x[i·cols + c] for k < nrows,
// i < nx, where r_k = idx[k] (a gathered row list) or k (dense).
//
// One warp per output row, WARPS rows per block. Plain types: each lane
// streams 16-byte vectors of the row (four in flight), widens them to f32
// and dots them with x. Quantized types: the warp stages TILE blocks of
// the row in shared memory with coalesced 16-byte loads (the next tile's
// loads are issued before the current one is computed), then each lane
// decodes a 4-byte part of a block and dots it with the matching x run;
// the block scale is applied once per part. Sums are per lane in f32 and
// reduced with warp shuffles, so a row's result does not depend on the
// launch geometry: results are deterministic.
#pragma once
#include "types.cuh"

template <class T, int N>
__device__ __forceinline__ void plain_vec(uint4 v, i64 c, const float* x, int cols, int nx, bool xa, float* acc) {
  float f[T::E];
  T::dec(v, f);
#pragma unroll
  for (int i = 0; i < N; i++) {
    if (i < nx) {
      const float* xi = x + (i64)i * cols + c;
#pragma unroll
      for (int e = 0; e < T::E; e += 4) {
        const float4 xv = ldx4(xi + e, xa);
        acc[i] += f[e] * xv.x + f[e + 1] * xv.y + f[e + 2] * xv.z + f[e + 3] * xv.w;
      }
    }
  }
}

// gemv_row_plain accumulates row · x_i into acc[i] (per lane).
template <class T, int N>
__device__ __forceinline__ void gemv_row_plain(const u8* row, i64 rb, int cols, const float* x, int nx, int flags, int lane, float* acc) {
  const bool xa = flags & F_XAL;
  if (flags & F_VEC) {
    const uint4* rv = (const uint4*)row;
    const int nv = (int)(rb >> 4);
    int j = lane;
    for (; j + 96 < nv; j += 128) {
      const uint4 a0 = ldw(rv + j), a1 = ldw(rv + j + 32), a2 = ldw(rv + j + 64), a3 = ldw(rv + j + 96);
      plain_vec<T, N>(a0, (i64)j * T::E, x, cols, nx, xa, acc);
      plain_vec<T, N>(a1, (i64)(j + 32) * T::E, x, cols, nx, xa, acc);
      plain_vec<T, N>(a2, (i64)(j + 64) * T::E, x, cols, nx, xa, acc);
      plain_vec<T, N>(a3, (i64)(j + 96) * T::E, x, cols, nx, xa, acc);
    }
    for (; j < nv; j += 32) plain_vec<T, N>(ldw(rv + j), (i64)j * T::E, x, cols, nx, xa, acc);
    return;
  }
  for (int c = lane; c < cols; c += 32) {
    const float wv = T::get(row, c);
#pragma unroll
    for (int i = 0; i < N; i++)
      if (i < nx) acc[i] += wv * __ldg(x + (i64)i * cols + c);
  }
}

// quant_tile dots the nbt blocks staged at s (tile t of the row) with x.
template <class Q, int N>
__device__ __forceinline__ void quant_tile(const u8* s, int nbt, int t, const float* x, int cols, int nx, bool xa, int lane, float* acc) {
  const int m = lane % Q::LPB, bl = lane / Q::LPB;
  // Unrolled for one input; rolled for eight, whose accumulators and x
  // loads would otherwise spill on sm_75 (where ptxas aims at 64 registers).
#pragma unroll(N == 1 ? Q::G : 1)
  for (int g = 0; g < Q::G; g++) {
    const int b = g * Q::BPG + bl;
    if (b < nbt) {
      const u8* sb = s + b * Q::BS;
      const float d = h2f(*(const u16*)sb);
      float v[Q::EPL];
      Q::vals(sb, m, v);
      const i64 c0 = ((i64)t * TILE + b) * 32;
#pragma unroll
      for (int i = 0; i < N; i++) {
        if (i < nx) {
          const float* xi = x + (i64)i * cols + c0;
          float sum = 0.f;
#pragma unroll
          for (int j = 0; j < Q::EPL / 4; j++) {
            const float4 xv = ldx4(xi + Q::col4(m, j), xa);
            sum += v[4 * j] * xv.x + v[4 * j + 1] * xv.y + v[4 * j + 2] * xv.z + v[4 * j + 3] * xv.w;
          }
          acc[i] += d * sum;
        }
      }
    }
  }
}

// gemv_row_quant accumulates row · x_i into acc[i], staging the row through
// this warp's shared buffer s (TILE·BS bytes, 16-byte aligned).
template <class Q, int N>
__device__ __forceinline__ void gemv_row_quant(u8* s, const u8* row, int cols, const float* x, int nx, int flags, int lane, float* acc) {
  const bool xa = flags & F_XAL;
  const int nb = cols / 32;
  const int TB = Q::BS * TILE;                 // tile bytes, a multiple of 16
  const int TV = TB / 16;                      // 16-byte vectors per tile
  const int R = (TV + 31) / 32;                // vectors per lane
  const int nfull = nb / TILE;
  int t = 0;
  if (flags & F_VEC) {
    const uint4* g = (const uint4*)row;
    uint4 pf[R];
    if (nfull > 0) {
#pragma unroll
      for (int r = 0; r < R; r++)
        if (lane + 32 * r < TV) pf[r] = ldw(g + lane + 32 * r);
    }
    for (; t < nfull; t++) {
#pragma unroll
      for (int r = 0; r < R; r++)
        if (lane + 32 * r < TV) ((uint4*)s)[lane + 32 * r] = pf[r];
      __syncwarp();
      if (t + 1 < nfull) {
#pragma unroll
        for (int r = 0; r < R; r++)
          if (lane + 32 * r < TV) pf[r] = ldw(g + (i64)(t + 1) * TV + lane + 32 * r);
      }
      quant_tile<Q, N>(s, TILE, t, x, cols, nx, xa, lane, acc);
      __syncwarp();
    }
  }
  for (; t * TILE < nb; t++) {
    const int nbt = min(TILE, nb - t * TILE);
    stage_bytes(s, row + (i64)t * TB, nbt * Q::BS, flags & F_VEC, lane);
    __syncwarp();
    quant_tile<Q, N>(s, nbt, t, x, cols, nx, xa, lane, acc);
    __syncwarp();
  }
}

// gemv_finish reduces acc over the warp and stores the row's outputs.
template <int N>
__device__ __forceinline__ void gemv_finish(float* dst, i64 dstride, int k, int nx, int lane, float* acc) {
#pragma unroll
  for (int i = 0; i < N; i++) {
    if (i < nx) {
      const float s = warp_sum(acc[i]);
      if (lane == 0) dst[(i64)i * dstride + k] = s;
    }
  }
}

// gemv_row resolves the warp's row; false (after writing zeros and the
// error word) when the gathered index is out of range.
template <int N>
__device__ __forceinline__ bool gemv_row(const int* idx, int k, i64 nrw, float* dst, i64 dstride, int nx, int lane, u32* err, i64* r) {
  *r = idx ? (i64)__ldg(idx + k) : (i64)k;
  if (*r >= 0 && *r < nrw) return true;
  if (lane == 0) {
    for (int i = 0; i < nx; i++) dst[(i64)i * dstride + k] = 0.f;
    *err = ERR_INDEX;
  }
  return false;
}

template <class T, int N>
__device__ __forceinline__ void gemv_plain(float* dst, i64 dstride, const u8* w, i64 rb, int cols, const int* idx, int nrows,
                                           i64 nrw, const float* x, int nx, int flags, u32* err) {
  const int lane = threadIdx.x & 31;
  const int k = blockIdx.x * WARPS + (threadIdx.x >> 5);
  if (k >= nrows) return;  // a whole warp
  i64 r;
  if (!gemv_row<N>(idx, k, nrw, dst, dstride, nx, lane, err, &r)) return;
  float acc[N];
#pragma unroll
  for (int i = 0; i < N; i++) acc[i] = 0.f;
  gemv_row_plain<T, N>(w + r * rb, rb, cols, x, nx, flags, lane, acc);
  gemv_finish<N>(dst, dstride, k, nx, lane, acc);
}

template <class Q, int N>
__device__ __forceinline__ void gemv_quant(float* dst, i64 dstride, const u8* w, i64 rb, int cols, const int* idx, int nrows,
                                           i64 nrw, const float* x, int nx, int flags, u32* err) {
  __shared__ uint4 stage[WARPS][Q::BS * TILE / 16];
  const int lane = threadIdx.x & 31;
  const int k = blockIdx.x * WARPS + (threadIdx.x >> 5);
  if (k >= nrows) return;  // a whole warp
  i64 r;
  if (!gemv_row<N>(idx, k, nrw, dst, dstride, nx, lane, err, &r)) return;
  float acc[N];
#pragma unroll
  for (int i = 0; i < N; i++) acc[i] = 0.f;
  gemv_row_quant<Q, N>((u8*)stage[threadIdx.x >> 5], w + r * rb, cols, x, nx, flags, lane, acc);
  gemv_finish<N>(dst, dstride, k, nx, lane, acc);
}

// gemv1_T: one input, dense (idx == NULL) or gathered rows.
// gemv8_T: up to 8 inputs (nx), dense; dst rows are dstride apart. Its
// launch bound asks for only 2 resident blocks per SM, which lets ptxas
// use up to 128 registers instead of spilling (sm_86 aims at fewer).
#define GEMV_ENTRIES(KIND, T, name)                                                                                    \
  extern "C" __global__ void __launch_bounds__(WARPS * 32)                                                             \
      gemv1_##name(float* dst, const u8* w, i64 rb, int cols, const int* idx, int nrows, i64 nrw, const float* x,    \
                   int flags, u32* err) {                                                                              \
    KIND<T, 1>(dst, 0, w, rb, cols, idx, nrows, nrw, x, 1, flags, err);                                                \
  }                                                                                                                    \
  extern "C" __global__ void __launch_bounds__(WARPS * 32, 2)                                                          \
      gemv8_##name(float* dst, i64 dstride, const u8* w, i64 rb, int cols, int nrows, const float* x, int nx,         \
                   int flags, u32* err) {                                                                              \
    KIND<T, 8>(dst, dstride, w, rb, cols, 0, nrows, nrows, x, nx, flags, err);                                         \
  }

GEMV_ENTRIES(gemv_plain, TF32, f32)
GEMV_ENTRIES(gemv_plain, TF16, f16)
GEMV_ENTRIES(gemv_plain, TBF16, bf16)
GEMV_ENTRIES(gemv_quant, TQ8_0, q8_0)
GEMV_ENTRIES(gemv_quant, TQ4_0, q4_0)
