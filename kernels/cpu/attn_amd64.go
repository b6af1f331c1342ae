//go:build amd64 && !noasm && gc

package cpu

// attnScores sets s[j] = scale·Dot(q, k[j·stride : j·stride+len(q)]) for
// j < len(s): attnScoresAVX2 (the same bits) where the head dimension is
// a multiple of 8.
func attnScores(s, q, k []float32, stride int, scale float32) {
	hd := len(q)
	if !useAsm || hd%8 != 0 || len(s) == 0 {
		attnScoresGo(s, q, k, stride, scale)
		return
	}
	_ = k[(len(s)-1)*stride+hd-1]
	attnScoresAVX2(s, q, k, stride, hd, len(s), scale)
}

// attnValues sets o[i] = Σ_j p[j]·v[j·stride + i], as attnValuesGo:
// attnValuesAVX2 (the same bits) where len(o) is a multiple of 8.
func attnValues(o, p, v []float32, stride int) {
	hd := len(o)
	if !useAsm || hd%8 != 0 || len(p) == 0 {
		attnValuesGo(o, p, v, stride)
		return
	}
	_ = v[(len(p)-1)*stride+hd-1]
	attnValuesAVX2(o, p, v, stride, hd, len(p))
}
