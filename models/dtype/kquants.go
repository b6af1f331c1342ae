package dtype

import (
	"encoding/binary"
	"math"
)

// The super-block types: Q4_K, Q5_K, Q6_K, Q8_K (256 elements per block).
// Layouts and formulas are in Dequantize's doc comment.

// groupMaxEps is ggml's GROUP_MAX_EPS: a group whose largest magnitude is
// below it is stored as all zeros.
const groupMaxEps = 1e-15

// scaleMinK4 unpacks the 6-bit scale and min of sub-block j (0..7) from the
// 12 packed bytes q of a Q4_K/Q5_K block (ggml's get_scale_min_k4):
//
//	j < 4:  sc = q[j] & 63,                        m = q[j+4] & 63
//	j ≥ 4:  sc = q[j+4] & 0xF | (q[j−4] >> 6) << 4, m = q[j+4] >> 4 | (q[j] >> 6) << 4
//
// So bytes 0..3 hold sc[0..3] plus the top bits of sc[4..7], bytes 4..7
// hold m[0..3] plus the top bits of m[4..7], and bytes 8..11 hold the low
// nibbles of sc[4..7] (low half) and m[4..7] (high half).
func scaleMinK4(j int, q []byte) (sc, m uint8) {
	if j < 4 {
		return q[j] & 63, q[j+4] & 63
	}
	return q[j+4]&0xF | (q[j-4]>>6)<<4, q[j+4]>>4 | (q[j]>>6)<<4
}

// putScaleMinK4 is the inverse of scaleMinK4, as quantize_row_q4_K_ref
// packs: it must be called for j = 0..7 in order on zeroed q.
func putScaleMinK4(j int, q []byte, ls, lm uint8) {
	if j < 4 {
		q[j] = ls
		q[j+4] = lm
		return
	}
	q[j+4] = ls&0xF | (lm&0xF)<<4
	q[j-4] |= (ls >> 4) << 6
	q[j] |= (lm >> 4) << 6
}

func decodeQ4_K(b []byte, y []float32) {
	d := F16ToF32(le16(b))
	dmin := F16ToF32(le16(b[2:]))
	scales := b[4:16]
	qs := b[16:144]
	for g := 0; g < 4; g++ {
		sc, m := scaleMinK4(2*g, scales)
		d1, m1 := float32(d*float32(sc)), float32(dmin*float32(m))
		sc, m = scaleMinK4(2*g+1, scales)
		d2, m2 := float32(d*float32(sc)), float32(dmin*float32(m))
		q := qs[32*g : 32*g+32]
		for l := 0; l < 32; l++ {
			y[64*g+l] = float32(d1*float32(q[l]&0xF)) - m1
			y[64*g+32+l] = float32(d2*float32(q[l]>>4)) - m2
		}
	}
}

func decodeQ5_K(b []byte, y []float32) {
	d := F16ToF32(le16(b))
	dmin := F16ToF32(le16(b[2:]))
	scales := b[4:16]
	qh := b[16:48]
	qs := b[48:176]
	for g := 0; g < 4; g++ {
		sc, m := scaleMinK4(2*g, scales)
		d1, m1 := float32(d*float32(sc)), float32(dmin*float32(m))
		sc, m = scaleMinK4(2*g+1, scales)
		d2, m2 := float32(d*float32(sc)), float32(dmin*float32(m))
		ql := qs[32*g : 32*g+32]
		for l := 0; l < 32; l++ {
			h1 := (qh[l] >> (2 * g) & 1) << 4
			h2 := (qh[l] >> (2*g + 1) & 1) << 4
			y[64*g+l] = float32(d1*float32(ql[l]&0xF+h1)) - m1
			y[64*g+32+l] = float32(d2*float32(ql[l]>>4+h2)) - m2
		}
	}
}

func decodeQ6_K(b []byte, y []float32) {
	d := F16ToF32(le16(b[208:]))
	for h := 0; h < 2; h++ {
		ql := b[64*h : 64*h+64]
		qh := b[128+32*h : 128+32*h+32]
		sc := b[192+8*h : 192+8*h+8]
		yy := y[128*h : 128*h+128]
		for l := 0; l < 32; l++ {
			is := l / 16
			q1 := int32(ql[l]&0xF|(qh[l]>>0&3)<<4) - 32
			q2 := int32(ql[l+32]&0xF|(qh[l]>>2&3)<<4) - 32
			q3 := int32(ql[l]>>4|(qh[l]>>4&3)<<4) - 32
			q4 := int32(ql[l+32]>>4|(qh[l]>>6&3)<<4) - 32
			yy[l] = d * float32(int8(sc[is])) * float32(q1)
			yy[l+32] = d * float32(int8(sc[is+2])) * float32(q2)
			yy[l+64] = d * float32(int8(sc[is+4])) * float32(q3)
			yy[l+96] = d * float32(int8(sc[is+6])) * float32(q4)
		}
	}
}

func decodeQ8_K(b []byte, y []float32) {
	d := math.Float32frombits(binary.LittleEndian.Uint32(b))
	for j := 0; j < 256; j++ {
		y[j] = d * float32(int8(b[4+j]))
	}
}

// makeQKX2Quants is ggml's make_qkx2_quants with use_mad = false: it fits
// x ≈ scale·L − min with L in [0, nmax] by weighted least squares, trying
// nstep+1 candidate inverse scales (rmin + rdelta·is + nmax)/(max − min)
// and keeping the one with the least weighted squared error. It returns
// the scale and the (non-negative) min; L receives the levels.
func makeQKX2Quants(nmax int32, x, weights []float32, L, Laux []uint8, rmin, rdelta float32, nstep int) (scale, theMin float32) {
	n := len(x)
	lo, hi := x[0], x[0]
	sumW := weights[0]
	sumX := float32(sumW * x[0])
	for i := 1; i < n; i++ {
		if x[i] < lo {
			lo = x[i]
		}
		if x[i] > hi {
			hi = x[i]
		}
		w := weights[i]
		sumW += w
		sumX += float32(w * x[i])
	}
	if lo > 0 {
		lo = 0
	}
	if hi == lo {
		for i := range L[:n] {
			L[i] = 0
		}
		return 0, -lo
	}
	iscale := float32(nmax) / (hi - lo)
	scale = 1 / iscale
	var bestError float32
	for i := 0; i < n; i++ {
		l := clampInt(nearestInt(float32(iscale*(x[i]-lo))), 0, nmax)
		L[i] = uint8(l)
		diff := float32(float32(scale*float32(L[i]))+lo) - x[i]
		diff = diff * diff
		bestError += float32(weights[i] * diff)
	}
	if nstep < 1 {
		return scale, -lo
	}
	for is := 0; is <= nstep; is++ {
		iscale = (float32(rmin+float32(rdelta*float32(is))) + float32(nmax)) / (hi - lo)
		var sumL, sumL2, sumXL float32
		for i := 0; i < n; i++ {
			l := clampInt(nearestInt(float32(iscale*(x[i]-lo))), 0, nmax)
			Laux[i] = uint8(l)
			w := weights[i]
			wl := float32(w * float32(l))
			sumL += wl
			sumL2 += float32(wl * float32(l))
			sumXL += float32(wl * x[i])
		}
		D := float32(sumW*sumL2) - float32(sumL*sumL)
		if D > 0 {
			thisScale := (float32(sumW*sumXL) - float32(sumX*sumL)) / D
			thisMin := (float32(sumL2*sumX) - float32(sumL*sumXL)) / D
			if thisMin > 0 {
				thisMin = 0
				thisScale = sumXL / sumL2
			}
			var curError float32
			for i := 0; i < n; i++ {
				diff := float32(float32(thisScale*float32(Laux[i]))+thisMin) - x[i]
				diff = diff * diff
				curError += float32(weights[i] * diff)
			}
			if curError < bestError {
				copy(L[:n], Laux[:n])
				bestError = curError
				scale = thisScale
				lo = thisMin
			}
		}
	}
	return scale, -lo
}

// makeQXQuants is ggml's make_qx_quants with rmse_type 1 and no importance
// weights (weights w = x²): it fits x ≈ scale·(L − nmax) with L − nmax in
// [−nmax, nmax−1], trying inverse scales −(nmax + 0.1·is)/max for
// is = −9..9 and keeping the best weighted fit. L receives L − nmax + nmax,
// i.e. values in [0, 2·nmax).
func makeQXQuants(nmax int32, x []float32, L []int8) float32 {
	max, amax := absMax(x)
	if amax < groupMaxEps {
		for i := range x {
			L[i] = 0
		}
		return 0
	}
	iscale := float32(-nmax) / max
	var sumLX, sumL2 float32
	for i, v := range x {
		l := clampInt(nearestInt(float32(iscale*v)), -nmax, nmax-1)
		L[i] = int8(l + nmax)
		w := float32(v * v)
		fl := float32(l)
		sumLX += float32(float32(w*v) * fl)
		sumL2 += float32(float32(w*fl) * fl)
	}
	var scale float32
	if sumL2 != 0 {
		scale = sumLX / sumL2
	}
	best := scale * sumLX
	for is := int32(-9); is <= 9; is++ {
		if is == 0 {
			continue
		}
		iscale = -(float32(nmax) + float32(0.1*float32(is))) / max
		sumLX, sumL2 = 0, 0
		for _, v := range x {
			l := clampInt(nearestInt(float32(iscale*v)), -nmax, nmax-1)
			w := float32(v * v)
			fl := float32(l)
			sumLX += float32(float32(w*v) * fl)
			sumL2 += float32(float32(w*fl) * fl)
		}
		if sumL2 > 0 && sumLX*sumLX > best*sumL2 {
			for i, v := range x {
				l := clampInt(nearestInt(float32(iscale*v)), -nmax, nmax-1)
				L[i] = int8(nmax + l)
			}
			scale = sumLX / sumL2
			best = scale * sumLX
		}
	}
	return scale
}

// quantizeK4K5 is the shared body of quantize_row_q4_K_ref and
// quantize_row_q5_K_ref: per 32-element sub-block, weights av_x + |x|
// (av_x the sub-block's RMS) and makeQKX2Quants; then the eight scales and
// mins are quantized to 6 bits against their maxima (d = max_scale/63,
// dmin = max_min/63), and every element is requantized with the stored
// scales: L = clamp(nearest((x + dmin·m)/(d·sc)), 0, nmax). The returned
// levels and the 16 header bytes (d, dmin, scales) are the caller's to
// pack.
func quantizeK4K5(x []float32, hdr []byte, L *[256]uint8, nmax int32, rmin, rdelta float32, nstep int) {
	var (
		laux    [32]uint8
		weights [32]float32
		mins    [8]float32
		scales  [8]float32
	)
	var maxScale, maxMin float32
	for j := 0; j < 8; j++ {
		xs := x[32*j : 32*j+32]
		var sumX2 float32
		for _, v := range xs {
			sumX2 += float32(v * v)
		}
		avX := sqrt32(sumX2 / 32)
		for l, v := range xs {
			weights[l] = avX + abs32(v)
		}
		scales[j], mins[j] = makeQKX2Quants(nmax, xs, weights[:], L[32*j:32*j+32], laux[:], rmin, rdelta, nstep)
		if scales[j] > maxScale {
			maxScale = scales[j]
		}
		if mins[j] > maxMin {
			maxMin = mins[j]
		}
	}
	var invScale, invMin float32
	if maxScale > 0 {
		invScale = 63 / maxScale
	}
	if maxMin > 0 {
		invMin = 63 / maxMin
	}
	packed := hdr[4:16]
	clear(packed)
	for j := 0; j < 8; j++ {
		ls := min(63, uint8(nearestInt(float32(invScale*scales[j]))))
		lm := min(63, uint8(nearestInt(float32(invMin*mins[j]))))
		putScaleMinK4(j, packed, ls, lm)
	}
	put16(hdr, F32ToF16(maxScale/63))
	put16(hdr[2:], F32ToF16(maxMin/63))
	dAll, mAll := F16ToF32(le16(hdr)), F16ToF32(le16(hdr[2:]))
	for j := 0; j < 8; j++ {
		sc, m := scaleMinK4(j, packed)
		d := float32(dAll * float32(sc))
		if d == 0 {
			continue
		}
		dm := float32(mAll * float32(m))
		for ii := 0; ii < 32; ii++ {
			l := nearestInt((x[32*j+ii] + dm) / d)
			L[32*j+ii] = uint8(clampInt(l, 0, nmax))
		}
	}
}

// encodeQ4_K is quantize_row_q4_K_ref (levels 0..15, make_qkx2_quants with
// rmin −1, rdelta 0.1, 20 steps); qs[32g+l] = L[64g+l] | L[64g+32+l] << 4.
func encodeQ4_K(x []float32, b []byte) {
	var L [256]uint8
	quantizeK4K5(x, b[:16], &L, 15, -1, 0.1, 20)
	qs := b[16:144]
	for g := 0; g < 4; g++ {
		for l := 0; l < 32; l++ {
			qs[32*g+l] = L[64*g+l] | L[64*g+32+l]<<4
		}
	}
}

// encodeQ5_K is quantize_row_q5_K_ref (levels 0..31, rmin −0.5, rdelta
// 0.1, 15 steps); low nibbles as Q4_K, bit 4 of L[64g+l] to bit 2g of
// qh[l] and of L[64g+32+l] to bit 2g+1.
func encodeQ5_K(x []float32, b []byte) {
	var L [256]uint8
	quantizeK4K5(x, b[:16], &L, 31, -0.5, 0.1, 15)
	qh := b[16:48]
	qs := b[48:176]
	clear(qh)
	for g := 0; g < 4; g++ {
		for l := 0; l < 32; l++ {
			l1, l2 := L[64*g+l], L[64*g+32+l]
			qh[l] |= (l1>>4)<<(2*g) | (l2>>4)<<(2*g+1)
			qs[32*g+l] = l1&0xF | (l2&0xF)<<4
		}
	}
}

// encodeQ6_K is quantize_row_q6_K_ref: per 16-element sub-block,
// make_qx_quants(nmax 32, rmse_type 1); the 16 scales are stored as int8
// against the one of largest magnitude (d = max_scale/−128, sc =
// min(127, nearest(−128·scale/max_scale))); then every element is
// requantized as clamp(nearest(x/(d·sc)), −32, 31) + 32. A block whose
// scales are all below GROUP_MAX_EPS is all zeros.
func encodeQ6_K(x []float32, b []byte) {
	var (
		L      [256]int8
		scales [16]float32
	)
	var maxScale, maxAbsScale float32
	for ib := 0; ib < 16; ib++ {
		s := makeQXQuants(32, x[16*ib:16*ib+16], L[16*ib:16*ib+16])
		scales[ib] = s
		if a := abs32(s); a > maxAbsScale {
			maxAbsScale, maxScale = a, s
		}
	}
	if maxAbsScale < groupMaxEps {
		clear(b[:210])
		return
	}
	iscale := -128 / maxScale
	put16(b[208:], F32ToF16(1/iscale))
	sc := b[192:208]
	for ib := 0; ib < 16; ib++ {
		sc[ib] = uint8(int8(min(127, nearestInt(float32(iscale*scales[ib])))))
	}
	dAll := F16ToF32(le16(b[208:]))
	for j := 0; j < 16; j++ {
		d := dAll * float32(int8(sc[j]))
		if d == 0 {
			continue
		}
		for ii := 0; ii < 16; ii++ {
			l := clampInt(nearestInt(x[16*j+ii]/d), -32, 31)
			L[16*j+ii] = int8(l + 32)
		}
	}
	for h := 0; h < 2; h++ {
		ql := b[64*h : 64*h+64]
		qh := b[128+32*h : 128+32*h+32]
		lv := L[128*h : 128*h+128]
		for l := 0; l < 32; l++ {
			a, c, e, f := uint8(lv[l]), uint8(lv[l+32]), uint8(lv[l+64]), uint8(lv[l+96])
			ql[l] = a&0xF | (e&0xF)<<4
			ql[l+32] = c&0xF | (f&0xF)<<4
			qh[l] = a>>4 | (c>>4)<<2 | (e>>4)<<4 | (f>>4)<<6
		}
	}
}

// encodeQ8_K is quantize_row_q8_K_ref: d = max/−127 (float32, where max is
// the signed value of largest magnitude), q = min(127, nearest(x/d)),
// bsums[k] = Σ q[16k:16k+16].
func encodeQ8_K(x []float32, b []byte) {
	max, amax := absMax(x[:256])
	qs := b[4:260]
	bsums := b[260:292]
	if amax == 0 {
		binary.LittleEndian.PutUint32(b, 0)
		clear(qs)
		clear(bsums)
		return
	}
	iscale := -127 / max
	for j := 0; j < 256; j++ {
		qs[j] = uint8(int8(min(127, nearestInt(float32(iscale*x[j])))))
	}
	for k := 0; k < 16; k++ {
		var s int32
		for _, q := range qs[16*k : 16*k+16] {
			s += int32(int8(q))
		}
		binary.LittleEndian.PutUint16(bsums[2*k:], uint16(int16(s)))
	}
	binary.LittleEndian.PutUint32(b, math.Float32bits(1/iscale))
}
