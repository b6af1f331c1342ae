// Attention: cpu.Pool.Attention. For token i < n at position P = pos+i and
// head h (KV head g = h/(heads/kvheads)), over cache positions j ≤ P:
//   s_j = scale·q·K[j,g], out = Σ_j softmax(s)_j·V[j,g].
//
// Grid (heads, n, splits), ATT_WARPS warps per block. The positions 0..P
// are cut into `splits` chunks, one per block; each warp takes every
// ATT_WARPS-th position of its block's chunk and keeps an online softmax
// (running max m, sum l, and the weighted sum of V rows, hd/32 values per
// lane). The block merges its warps in warp order; with several splits it
// writes (m, l, acc) to scratch and the last block of the (token, head)
// merges the splits in split order. A q·k dot is one warp: coalesced rows
// and a shuffle reduction. f16 caches are widened to f32.
#pragma once
#include "common.cuh"

#define ATT_WARPS 4
#define ATT_MAXHD 256

template <bool F16>
__device__ __forceinline__ float ldkv(const u8* c, i64 i) {
  if (F16) return h2f(__ldg((const u16*)c + i));
  return __ldg((const float*)c + i);
}

template <bool F16>
__device__ __forceinline__ void attention(float* out, const float* q, const u8* kc, const u8* vc, int pos, int heads,
                                          int kvheads, int hd, float scale, float* scratch, u32* counters) {
  __shared__ float sm[ATT_WARPS], sl[ATT_WARPS], sacc[ATT_WARPS][ATT_MAXHD];
  __shared__ int last;
  const int E = ATT_MAXHD / 32;
  const int lane = threadIdx.x & 31, wid = threadIdx.x >> 5;
  const int h = blockIdx.x, i = blockIdx.y, sp = blockIdx.z, ns = gridDim.z;
  const int g = h / (heads / kvheads);
  const int cnt = pos + i + 1;
  const int chunk = (cnt + ns - 1) / ns;
  const int j0 = sp * chunk, j1 = min(cnt, j0 + chunk);
  const i64 qo = ((i64)i * heads + h) * hd;
  const i64 stride = (i64)kvheads * hd;
  float qv[E], acc[E];
#pragma unroll
  for (int e = 0; e < E; e++) {
    const int d = lane + 32 * e;
    qv[e] = d < hd ? q[qo + d] : 0.f;
    acc[e] = 0.f;
  }
  float m = -INFINITY, l = 0.f;
  for (int j = j0 + wid; j < j1; j += ATT_WARPS) {
    const i64 base = (i64)j * stride + (i64)g * hd;
    float s = 0.f;
#pragma unroll
    for (int e = 0; e < E; e++) {
      const int d = lane + 32 * e;
      if (d < hd) s += qv[e] * ldkv<F16>(kc, base + d);
    }
    s = warp_sum(s) * scale;
    const float mn = fmaxf(m, s);
    const float c = expf(m - mn);
    const float p = expf(s - mn);
    l = l * c + p;
#pragma unroll
    for (int e = 0; e < E; e++) {
      const int d = lane + 32 * e;
      if (d < hd) acc[e] = acc[e] * c + p * ldkv<F16>(vc, base + d);
    }
    m = mn;
  }
  if (lane == 0) sm[wid] = m, sl[wid] = l;
#pragma unroll
  for (int e = 0; e < E; e++) {
    const int d = lane + 32 * e;
    if (d < hd) sacc[wid][d] = acc[e];
  }
  __syncthreads();
  float M = -INFINITY;
  for (int w = 0; w < ATT_WARPS; w++) M = fmaxf(M, sm[w]);
  float f[ATT_WARPS], L = 0.f;
  for (int w = 0; w < ATT_WARPS; w++) {
    f[w] = sm[w] == -INFINITY ? 0.f : expf(sm[w] - M);
    L += sl[w] * f[w];
  }
  if (ns == 1) {
    const float inv = 1.0f / L;
    for (int d = threadIdx.x; d < hd; d += blockDim.x) {
      float o = 0.f;
      for (int w = 0; w < ATT_WARPS; w++) o += sacc[w][d] * f[w];
      out[qo + d] = o * inv;
    }
    return;
  }
  const i64 pair = (i64)i * heads + h;
  float* part = scratch + (pair * ns + sp) * (hd + 2);
  if (threadIdx.x == 0) part[0] = M, part[1] = L;
  for (int d = threadIdx.x; d < hd; d += blockDim.x) {
    float o = 0.f;
    for (int w = 0; w < ATT_WARPS; w++) o += sacc[w][d] * f[w];
    part[2 + d] = o;
  }
  __threadfence();
  __syncthreads();
  if (threadIdx.x == 0) last = atomicAdd(counters + pair, 1u) == (u32)ns - 1;
  __syncthreads();
  if (!last) return;
  const float* base = scratch + pair * ns * (hd + 2);
  float MM = -INFINITY;
  for (int s = 0; s < ns; s++) MM = fmaxf(MM, __ldcg(base + (i64)s * (hd + 2)));
  float LL = 0.f;
  for (int s = 0; s < ns; s++) {
    const float ms = __ldcg(base + (i64)s * (hd + 2));
    LL += ms == -INFINITY ? 0.f : __ldcg(base + (i64)s * (hd + 2) + 1) * expf(ms - MM);
  }
  const float inv = 1.0f / LL;
  for (int d = threadIdx.x; d < hd; d += blockDim.x) {
    float o = 0.f;
    for (int s = 0; s < ns; s++) {
      const float ms = __ldcg(base + (i64)s * (hd + 2));
      if (ms != -INFINITY) o += __ldcg(base + (i64)s * (hd + 2) + 2 + d) * expf(ms - MM);
    }
    out[qo + d] = o * inv;
  }
  if (threadIdx.x == 0) counters[pair] = 0;
}

// attn_f32kv / attn_f16kv: q and out are n×heads×hd (token-major); the
// caches are [position][kv head][hd]. blockDim.x = 32·ATT_WARPS.
extern "C" __global__ void __launch_bounds__(ATT_WARPS * 32)
    attn_f32kv(float* out, const float* q, const u8* k, const u8* v, int pos, int heads, int kvheads, int hd,
               float scale, float* scratch, u32* counters) {
  attention<false>(out, q, k, v, pos, heads, kvheads, hd, scale, scratch, counters);
}

extern "C" __global__ void __launch_bounds__(ATT_WARPS * 32)
    attn_f16kv(float* out, const float* q, const u8* k, const u8* v, int pos, int heads, int kvheads, int hd,
               float scale, float* scratch, u32* counters) {
  attention<true>(out, q, k, v, pos, heads, kvheads, hd, scale, scratch, counters);
}
