//go:build !amd64 || noasm || !gc

package cpu

// siluSlice applies siluPoly to every element of x.
func siluSlice(x []float32) { siluGo(x) }

// expSub sets x[i] = expPoly(x[i] − m).
func expSub(x []float32, m float32) { expSubGo(x, m) }
