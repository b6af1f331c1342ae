// Norms, RoPE, the KV store and the element-wise ops. Each follows the
// formula and operation order of its kernels/cpu counterpart (named in its
// comment), with the same f64 accumulations and transcendental functions
// evaluated in f64 where the CPU does, and explicitly rounded operations
// (__fmul_rn, __dadd_rn, …) where a fused multiply-add would change the
// result: the GPU and CPU agree to the last bit or within a rounding.
#pragma once
#include "common.cuh"

// block_sum_d returns the f64 sum of v over the block (blockDim.x a
// multiple of 32, at most 1024), in a fixed order; sh holds 32 doubles.
__device__ __forceinline__ double block_sum_d(double v, double* sh) {
  const int lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = blockDim.x >> 5;
  v = warp_sum_d(v);
  if (lane == 0) sh[wid] = v;
  __syncthreads();
  double s = 0.0;
  for (int w = 0; w < nw; w++) s += sh[w];
  __syncthreads();
  return s;
}

// rms_norm: cpu.RMSNorm on row blockIdx.x of dim floats; w may be NULL.
extern "C" __global__ void rms_norm(float* dst, const float* x, const float* w, int dim, float eps) {
  __shared__ double sh[32];
  const float* xr = x + (i64)blockIdx.x * dim;
  float* dr = dst + (i64)blockIdx.x * dim;
  double s = 0.0;
  for (int c = threadIdx.x; c < dim; c += blockDim.x) {
    const double v = xr[c];
    s += v * v;
  }
  s = block_sum_d(s, sh);
  const float mean = (float)(s / dim);
  const float scale = 1.0f / sqrtf(mean + eps);
  for (int c = threadIdx.x; c < dim; c += blockDim.x) {
    const float y = __fmul_rn(xr[c], scale);
    dr[c] = w ? __fmul_rn(y, w[c]) : y;
  }
}

// layer_norm: cpu.LayerNorm on row blockIdx.x; w and b may be NULL.
extern "C" __global__ void layer_norm(float* dst, const float* x, const float* w, const float* b, int dim, float eps) {
  __shared__ double sh[32];
  const float* xr = x + (i64)blockIdx.x * dim;
  float* dr = dst + (i64)blockIdx.x * dim;
  double s = 0.0;
  for (int c = threadIdx.x; c < dim; c += blockDim.x) s += (double)xr[c];
  s = block_sum_d(s, sh);
  const float mean = (float)(s / dim);
  double s2 = 0.0;
  for (int c = threadIdx.x; c < dim; c += blockDim.x) {
    const double d = (double)(xr[c] - mean);
    s2 += d * d;
  }
  s2 = block_sum_d(s2, sh);
  const float var = (float)(s2 / dim);
  const float scale = 1.0f / sqrtf(var + eps);
  for (int c = threadIdx.x; c < dim; c += blockDim.x) {
    float y = __fmul_rn(xr[c] - mean, scale);
    if (w) y = __fmul_rn(y, w[c]);
    if (b) y = __fadd_rn(y, b[c]);
    dr[c] = y;
  }
}

// ROPE_MAX is the most rotated pairs per head (Dims/2) the rope kernel takes.
#define ROPE_MAX 256

// RopeInv carries the inverse frequencies inv[i] = Scale / (Base^(2i/Dims)
// · FreqFactors[i]), computed in f64 on the host exactly as cpu.NewRoPE
// does, as a by-value kernel parameter.
struct RopeInv {
  double v[ROPE_MAX];
};

// rope: cpu.RoPE.Apply for n tokens of heads heads of hd values, token i at
// position pos+i; one thread per (token, pair), looping over heads. The
// angle and its sine and cosine are f64, as on the CPU.
extern "C" __global__ void rope(float* x, int n, int heads, int hd, int half, int neox, int pos, RopeInv inv) {
  const i64 tid = (i64)blockIdx.x * blockDim.x + threadIdx.x;
  if (tid >= (i64)n * half) return;
  const int i = (int)(tid / half), p = (int)(tid % half);
  const double th = (double)(pos + i) * inv.v[p];
  double sn, cs;
  sincos(th, &sn, &cs);
  const int a = neox ? p : 2 * p, b = neox ? p + half : 2 * p + 1;
  float* xt = x + (i64)i * heads * hd;
  for (int h = 0; h < heads; h++) {
    float* xh = xt + (i64)h * hd;
    const double x0 = xh[a], x1 = xh[b];
    xh[a] = (float)__dadd_rn(__dmul_rn(x0, cs), -__dmul_rn(x1, sn));
    xh[b] = (float)__dadd_rn(__dmul_rn(x0, sn), __dmul_rn(x1, cs));
  }
}

// store_kv_*: cache[i] = src[i] for i < n (the host offsets cache to the
// first position), rounded to nearest even for an f16 cache.
extern "C" __global__ void store_kv_f32(float* cache, const float* src, i64 n) {
  for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (i64)gridDim.x * blockDim.x) cache[i] = src[i];
}

extern "C" __global__ void store_kv_f16(u16* cache, const float* src, i64 n) {
  for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (i64)gridDim.x * blockDim.x) cache[i] = f2h(src[i]);
}

#define GRID_STRIDE(i, n) for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (i64)gridDim.x * blockDim.x)

// add_bias: x[i·width + j] += b[j], i < n.
extern "C" __global__ void add_bias(float* x, const float* b, int width, i64 total) {
  GRID_STRIDE(i, total) x[i] += b[i % width];
}

// add_gather: dst[k] += src[idx[k]], k < n; idx is not range-checked
// against src (the host cannot see it): the caller's contract.
extern "C" __global__ void add_gather(float* dst, const float* src, const int* idx, i64 n, i64 nsrc, u32* err) {
  GRID_STRIDE(k, n) {
    const i64 r = idx[k];
    if (r >= 0 && r < nsrc)
      dst[k] += src[r];
    else
      *err = ERR_INDEX;
  }
}

// add: dst[i] += x[i].
extern "C" __global__ void add(float* dst, const float* x, i64 n) {
  GRID_STRIDE(i, n) dst[i] += x[i];
}

// mul: dst[i] = a[i]·b[i].
extern "C" __global__ void mul(float* dst, const float* a, const float* b, i64 n) {
  GRID_STRIDE(i, n) dst[i] = __fmul_rn(a[i], b[i]);
}

// silu: cpu.SiLU, x·(1/(1 + e^−x)) with the exponential in f64.
extern "C" __global__ void silu(float* x, i64 n) {
  GRID_STRIDE(i, n) {
    const float v = x[i];
    x[i] = v * (1.0f / (1.0f + (float)exp(-(double)v)));
  }
}

// gelu: cpu.GELU, ½·x·(1 + tanh(√(2/π)·x·(1 + 0.044715·x²))) in f64, with
// x ≤ −10 → 0 and x ≥ 10 → x.
extern "C" __global__ void gelu(float* x, i64 n) {
  GRID_STRIDE(i, n) {
    const float v = x[i];
    if (v <= -10.f) {
      x[i] = 0.f;
    } else if (!(v >= 10.f)) {
      const double f = v;
      const double inner = __dmul_rn(__dmul_rn(0.79788456080286535587989211986876, f),
                                     __dadd_rn(1.0, __dmul_rn(__dmul_rn(0.044715, f), f)));
      x[i] = (float)__dmul_rn(__dmul_rn(0.5, f), __dadd_rn(1.0, tanh(inner)));
    }
  }
}

// relu: cpu.ReLU, x ← max(x, 0) (NaN → 0).
extern "C" __global__ void relu(float* x, i64 n) {
  GRID_STRIDE(i, n) {
    if (!(x[i] > 0.f)) x[i] = 0.f;
  }
}

// threshold: x ← 0 where |x| ≤ tau.
extern "C" __global__ void threshold(float* x, i64 n, float tau) {
  GRID_STRIDE(i, n) {
    if (fabsf(x[i]) <= tau) x[i] = 0.f;
  }
}

// read_bw reads n 16-byte vectors (for measuring the device's read
// bandwidth), four loads in flight per thread; the sink is written only on
// an impossible value, so the loads cannot be optimised away.
extern "C" __global__ void read_bw(const uint4* p, i64 n, u32* sink) {
  u32 acc = 0;
  const i64 stride = (i64)gridDim.x * blockDim.x;
  i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x;
  for (; i + 3 * stride < n; i += 4 * stride) {
    const uint4 a = ldw(p + i), b = ldw(p + i + stride), c = ldw(p + i + 2 * stride), d = ldw(p + i + 3 * stride);
    acc ^= a.x ^ a.y ^ a.z ^ a.w ^ b.x ^ b.y ^ b.z ^ b.w ^ c.x ^ c.y ^ c.z ^ c.w ^ d.x ^ d.y ^ d.z ^ d.w;
  }
  for (; i < n; i += stride) {
    const uint4 v = ldw(p + i);
    acc ^= v.x ^ v.y ^ v.z ^ v.w;
  }
  if (acc == 0x5EED1234u && threadIdx.x == 1023) sink[0] = acc;
}
