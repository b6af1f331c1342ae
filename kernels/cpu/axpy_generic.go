//go:build !amd64 || noasm || !gc

package cpu

import "github.com/stokehq/stoke/models/dtype"

func axpyRows(t dtype.Type, dst, c []float32, w []byte, offs []int) {
	axpyRowsGeneric(t, dst, c, w, offs)
}

func prefetch(b []byte) {}

func setAxpyAVX512(on bool) (restore func()) { return func() {} }

func dotPrefetch(t dtype.Type, a *actInput, row, next []byte, x []float32) float32 {
	return a.dot(t, row, x, 0)
}

const gatherGroupMax = 4

func gatherGroupFor(t dtype.Type, a *actInput) int { return 0 }

func dotRowsGroup(t dtype.Type, a *actInput, dst []float32, w []byte, offs []int, x []float32) {
	panic("cpu: dotRowsGroup without assembly")
}
