//go:build amd64 && !noasm && gc

package cpu

// siluSlice applies siluPoly to every element of x: siluAVX2 on the
// multiples of eight, siluGo on the rest.
func siluSlice(x []float32) {
	if !useAsm {
		siluGo(x)
		return
	}
	n := len(x) &^ 7
	if n > 0 {
		siluAVX2(x, n)
	}
	siluGo(x[n:])
}

// expSub sets x[i] = expPoly(x[i] − m): expSubAVX2 on the multiples of
// eight, expSubGo on the rest.
func expSub(x []float32, m float32) {
	if !useAsm {
		expSubGo(x, m)
		return
	}
	n := len(x) &^ 7
	if n > 0 {
		expSubAVX2(x, m, n)
	}
	expSubGo(x[n:], m)
}
