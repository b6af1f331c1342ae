// Weight element types. A weight matrix is rows of cols elements, row r at
// byte r·rb (rb = the type's RowBytes(cols)), as GGUF stores it.
#pragma once
#include "common.cuh"

// Plain types: E elements per 16-byte vector; get reads element c of a
// row; dec widens a 16-byte vector into E floats.
struct TF32 {
  static const int EB = 4, E = 4;
  static __device__ __forceinline__ float get(const u8* row, i64 c) { return __ldg((const float*)row + c); }
  static __device__ __forceinline__ void dec(uint4 v, float* o) {
    o[0] = __uint_as_float(v.x);
    o[1] = __uint_as_float(v.y);
    o[2] = __uint_as_float(v.z);
    o[3] = __uint_as_float(v.w);
  }
};

struct TF16 {
  static const int EB = 2, E = 8;
  static __device__ __forceinline__ float get(const u8* row, i64 c) { return h2f(__ldg((const u16*)row + c)); }
  static __device__ __forceinline__ void dec(uint4 v, float* o) {
    o[0] = h2f((u16)v.x), o[1] = h2f((u16)(v.x >> 16));
    o[2] = h2f((u16)v.y), o[3] = h2f((u16)(v.y >> 16));
    o[4] = h2f((u16)v.z), o[5] = h2f((u16)(v.z >> 16));
    o[6] = h2f((u16)v.w), o[7] = h2f((u16)(v.w >> 16));
  }
};

struct TBF16 {
  static const int EB = 2, E = 8;
  static __device__ __forceinline__ float get(const u8* row, i64 c) { return bf2f(__ldg((const u16*)row + c)); }
  static __device__ __forceinline__ void dec(uint4 v, float* o) {
    o[0] = __uint_as_float(v.x << 16), o[1] = __uint_as_float(v.x & 0xffff0000u);
    o[2] = __uint_as_float(v.y << 16), o[3] = __uint_as_float(v.y & 0xffff0000u);
    o[4] = __uint_as_float(v.z << 16), o[5] = __uint_as_float(v.z & 0xffff0000u);
    o[6] = __uint_as_float(v.w << 16), o[7] = __uint_as_float(v.w & 0xffff0000u);
  }
};

// Quantized types, blocks of 32 values: BS bytes per block; in a staged
// tile, LPB lanes share one block and each decodes EPL of its values (lane
// part m = lane % LPB); BPG = 32/LPB blocks are decoded per step, G =
// TILE/BPG steps per tile, G·EPL = 32 values per lane per tile. vals
// returns the lane's EPL quants (without the scale); col(m, e) is the
// column within the block of value e; col4(m, j) the first column of its
// j-th run of 4 consecutive columns.

// Q8_0: d f16 | qs[32] int8; x[j] = d·qs[j]. Lane part m holds qs[4m..4m+3].
struct TQ8_0 {
  static const int BS = 34, LPB = 8, BPG = 4, G = 8, EPL = 4;
  static __device__ __forceinline__ void vals(const u8* b, int m, float* v) {
    const u32 q = ld32h(b + 2 + 4 * m) ^ 0x80808080u;  // int8 + 128 as uint8
    v[0] = BYTE_F(q, 0) - 8388736.0f;                  // 2^23 + 128
    v[1] = BYTE_F(q, 1) - 8388736.0f;
    v[2] = BYTE_F(q, 2) - 8388736.0f;
    v[3] = BYTE_F(q, 3) - 8388736.0f;
  }
  static __device__ __forceinline__ int col(int m, int e) { return 4 * m + e; }
  static __device__ __forceinline__ int col4(int m, int j) { return 4 * m; }
};

// Q4_0: d f16 | qs[16]; x[j] = d·((qs[j]&15)−8), x[j+16] = d·((qs[j]>>4)−8).
// Lane part m holds qs[4m..4m+3]: values 4m..4m+3 and 16+4m..16+4m+3.
struct TQ4_0 {
  static const int BS = 18, LPB = 4, BPG = 8, G = 4, EPL = 8;
  static __device__ __forceinline__ void vals(const u8* b, int m, float* v) {
    const u32 q = ld32h(b + 2 + 4 * m);
    const u32 lo = q & 0x0F0F0F0Fu, hi = (q >> 4) & 0x0F0F0F0Fu;
    v[0] = BYTE_F(lo, 0) - 8388616.0f;  // 2^23 + 8
    v[1] = BYTE_F(lo, 1) - 8388616.0f;
    v[2] = BYTE_F(lo, 2) - 8388616.0f;
    v[3] = BYTE_F(lo, 3) - 8388616.0f;
    v[4] = BYTE_F(hi, 0) - 8388616.0f;
    v[5] = BYTE_F(hi, 1) - 8388616.0f;
    v[6] = BYTE_F(hi, 2) - 8388616.0f;
    v[7] = BYTE_F(hi, 3) - 8388616.0f;
  }
  static __device__ __forceinline__ int col(int m, int e) { return e < 4 ? 4 * m + e : 16 + 4 * m + (e - 4); }
  static __device__ __forceinline__ int col4(int m, int j) { return j == 0 ? 4 * m : 16 + 4 * m; }
};
