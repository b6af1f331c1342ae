//go:build !amd64 || noasm || !gc

package cpu

func attnScores(s, q, k []float32, stride int, scale float32) {
	attnScoresGo(s, q, k, stride, scale)
}

func attnValues(o, p, v []float32, stride int) { attnValuesGo(o, p, v, stride) }
