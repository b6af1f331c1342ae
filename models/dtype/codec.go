package dtype

import (
	"encoding/binary"
	"fmt"
	"math"
)

// This file holds the reference codecs: Dequantize and Quantize. They are
// written to be read next to ggml's ggml-common.h and ggml-quants.c, one
// block at a time, with no attempt at speed; the fast kernels in
// kernels/cpu are tested against them.
//
// Floating-point care. Go allows a compiler to fuse x*y + z into one FMA
// (the arm64, ppc64, s390x and riscv64 back ends do), which would change the
// last bit. ggml's reference C rounds every product. So every product whose
// result is later added or subtracted is written float32(a*b): an explicit
// conversion forbids the fusion. The decoders are then bit-exact with
// ggml's dequantize_row_* on every GOARCH. On amd64, GOAMD64=v3 makes the
// compiler emit FMA, so `GOAMD64=v3 go test` checks that no product was
// left unprotected.

// Dequantize decodes len(dst) elements of type t from src (exactly
// RowBytes(len(dst)) bytes) — bit-exact with ggml's dequantize_row_*
// reference (compiled without floating-point contraction).
//
// Block layouts (little-endian; f16 is IEEE binary16) and decode formulas,
// for element i of a block:
//
//	F32   4 bytes               x = the float32
//	F16   2 bytes               x = F16ToF32
//	BF16  2 bytes               x = BF16ToF32
//	Q4_0  d f16 | qs[16]                          (18 bytes, 32 elements)
//	      x[j] = d·((qs[j] & 0xF) − 8), x[j+16] = d·((qs[j] >> 4) − 8), j < 16
//	Q4_1  d f16 | m f16 | qs[16]                  (20 bytes, 32 elements)
//	      x[j] = d·(qs[j] & 0xF) + m,   x[j+16] = d·(qs[j] >> 4) + m
//	Q5_0  d f16 | qh u32 | qs[16]                 (22 bytes, 32 elements)
//	      x[j] = d·(((qs[j] & 0xF) | bit j of qh << 4) − 16)
//	      x[j+16] = d·(((qs[j] >> 4) | bit j+16 of qh << 4) − 16)
//	Q5_1  d f16 | m f16 | qh u32 | qs[16]         (24 bytes, 32 elements)
//	      as Q5_0 without the −16, plus m
//	Q8_0  d f16 | qs[32] int8                     (34 bytes, 32 elements)
//	      x[j] = d·qs[j]
//	Q4_K  d f16 | dmin f16 | scales[12] | qs[128] (144 bytes, 256 elements)
//	      8 sub-blocks of 32 with 6-bit scale sc[s] and min m[s] (see
//	      scaleMinK4); sub-blocks 2g and 2g+1 share qs[32g:32g+32]:
//	      x[64g+l]    = d·sc[2g]·(qs[32g+l] & 0xF) − dmin·m[2g]
//	      x[64g+32+l] = d·sc[2g+1]·(qs[32g+l] >> 4) − dmin·m[2g+1]
//	Q5_K  d f16 | dmin f16 | scales[12] | qh[32] | qs[128] (176 bytes)
//	      as Q4_K with a fifth bit: bit 2g of qh[l] adds 16 to element
//	      64g+l, bit 2g+1 adds 16 to element 64g+32+l
//	Q6_K  ql[128] | qh[64] | scales[16] int8 | d f16 (210 bytes, 256 elements)
//	      16 sub-blocks of 16; for half h (128 elements), l < 32,
//	      with QL = ql[64h:], QH = qh[32h:], the 6-bit values q − 32:
//	      x[128h+l]    = d·sc[8h+l/16]·((QL[l] & 0xF    | (QH[l]>>0 & 3)<<4) − 32)
//	      x[128h+l+32] = d·sc[8h+l/16+2]·((QL[l+32] & 0xF | (QH[l]>>2 & 3)<<4) − 32)
//	      x[128h+l+64] = d·sc[8h+l/16+4]·((QL[l] >> 4     | (QH[l]>>4 & 3)<<4) − 32)
//	      x[128h+l+96] = d·sc[8h+l/16+6]·((QL[l+32] >> 4  | (QH[l]>>6 & 3)<<4) − 32)
//	Q8_K  d f32 | qs[256] int8 | bsums[16] int16  (292 bytes, 256 elements)
//	      x[j] = d·qs[j]; bsums[k] = Σ qs[16k:16k+16] is not used to decode
//
// Products are evaluated left to right in float32 and rounded one at a
// time, as in the C: Q4_K is (d·sc)·q − (dmin·m), Q6_K is (d·sc)·q.
func Dequantize(t Type, src []byte, dst []float32) error {
	if err := rowCheck("Dequantize", t, len(dst), len(src)); err != nil {
		return err
	}
	dec := decoder(t)
	bs, ts := t.BlockSize(), t.TypeSize()
	for i := 0; i < len(dst)/bs; i++ {
		dec(src[i*ts:(i+1)*ts], dst[i*bs:(i+1)*bs])
	}
	return nil
}

// Quantize encodes src into dst (exactly RowBytes(len(src)) bytes) the way
// ggml's quantize_row_*_ref reference functions do (the path llama-quantize
// takes without an importance matrix).
//
//   - F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 and Q8_K are bit-exact
//     with ggml for finite inputs; F16 and BF16 round to nearest even.
//     Q8_0, Q4_0 and F16 are checked byte for byte against files that real
//     ggml wrote (see realfile_test.go).
//   - Q4_K, Q5_K and Q6_K follow the reference search operation for
//     operation in float32 (make_qkx2_quants for Q4_K/Q5_K, make_qx_quants
//     with rmse_type 1 for Q6_K, then the 6- or 8-bit scale quantization and
//     the final requantization), so they are meant to be bit-exact too. No
//     ggml-written K-quant file was available; during development they
//     matched, byte for byte on some 2,400 blocks of varied data, a C
//     transcription of the ggml reference built with gcc
//     -ffp-contract=off (kept outside the repository). The committed tests
//     check valid blocks and the reference's error bounds.
//
// Where ggml leaves bytes undefined (the bsums of an all-zero Q8_K block)
// Quantize writes zeros. Non-finite inputs are C undefined behaviour in
// ggml; here they give some valid-length output and never panic.
func Quantize(t Type, src []float32, dst []byte) error {
	if err := rowCheck("Quantize", t, len(src), len(dst)); err != nil {
		return err
	}
	enc := encoder(t)
	bs, ts := t.BlockSize(), t.TypeSize()
	for i := 0; i < len(src)/bs; i++ {
		enc(src[i*bs:(i+1)*bs], dst[i*ts:(i+1)*ts])
	}
	return nil
}

func rowCheck(op string, t Type, n, nbytes int) error {
	if !t.Computable() {
		return fmt.Errorf("dtype: %s: no codec for type %s", op, t)
	}
	rb, err := t.RowBytes(uint64(n))
	if err != nil {
		return err
	}
	if rb != uint64(nbytes) {
		return fmt.Errorf("dtype: %s: %d %s elements take %d bytes, have %d", op, n, t, rb, nbytes)
	}
	return nil
}

func decoder(t Type) func(b []byte, y []float32) {
	switch t {
	case F32:
		return func(b []byte, y []float32) { y[0] = math.Float32frombits(binary.LittleEndian.Uint32(b)) }
	case F16:
		return func(b []byte, y []float32) { y[0] = F16ToF32(le16(b)) }
	case BF16:
		return func(b []byte, y []float32) { y[0] = BF16ToF32(le16(b)) }
	case Q4_0:
		return decodeQ4_0
	case Q4_1:
		return decodeQ4_1
	case Q5_0:
		return decodeQ5_0
	case Q5_1:
		return decodeQ5_1
	case Q8_0:
		return decodeQ8_0
	case Q4_K:
		return decodeQ4_K
	case Q5_K:
		return decodeQ5_K
	case Q6_K:
		return decodeQ6_K
	case Q8_K:
		return decodeQ8_K
	}
	panic("dtype: no decoder for " + t.String()) // unreachable after rowCheck
}

func encoder(t Type) func(x []float32, b []byte) {
	switch t {
	case F32:
		return func(x []float32, b []byte) { binary.LittleEndian.PutUint32(b, math.Float32bits(x[0])) }
	case F16:
		return func(x []float32, b []byte) { put16(b, F32ToF16(x[0])) }
	case BF16:
		return func(x []float32, b []byte) { put16(b, F32ToBF16(x[0])) }
	case Q4_0:
		return encodeQ4_0
	case Q4_1:
		return encodeQ4_1
	case Q5_0:
		return encodeQ5_0
	case Q5_1:
		return encodeQ5_1
	case Q8_0:
		return encodeQ8_0
	case Q4_K:
		return encodeQ4_K
	case Q5_K:
		return encodeQ5_K
	case Q6_K:
		return encodeQ6_K
	case Q8_K:
		return encodeQ8_K
	}
	panic("dtype: no encoder for " + t.String()) // unreachable after rowCheck
}

func le16(b []byte) uint16     { return binary.LittleEndian.Uint16(b) }
func put16(b []byte, v uint16) { binary.LittleEndian.PutUint16(b, v) }

func abs32(f float32) float32 { return math.Float32frombits(math.Float32bits(f) &^ (1 << 31)) }

func sqrt32(f float32) float32 { return float32(math.Sqrt(float64(f))) } // correctly rounded

// nearestInt is ggml's nearest_int: round to nearest, ties to even, by
// adding 1.5·2²³ and reading the low mantissa bits. Valid for
// |f| ≤ 4194303; outside that (and for NaN) it returns garbage, as in C,
// which every caller clamps.
func nearestInt(f float32) int32 {
	v := f + 12582912
	return int32(math.Float32bits(v)&0x007fffff) - 0x00400000
}

// truncInt converts like a C cast from float to int for values in range
// (toward zero); NaN and out-of-range values give some int and no panic.
func truncInt(f float32) int32 {
	if f != f || f >= 2147483647 || f <= -2147483648 {
		return math.MinInt32
	}
	return int32(f)
}

func clampInt(v, lo, hi int32) int32 { return max(lo, min(hi, v)) }
