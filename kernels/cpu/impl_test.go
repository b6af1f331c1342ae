package cpu_test

import (
	"testing"

	"github.com/stokehq/stoke/kernels/cpu"
)

// eachImpl runs body twice: with the assembly kernels (where this build
// and CPU have them; otherwise this run is generic too) and with the
// pure-Go twins forced, so one suite checks both implementations.
func eachImpl(t *testing.T, body func(t *testing.T)) {
	t.Helper()
	for _, generic := range []bool{false, true} {
		name := "asm"
		if generic {
			name = "generic"
		} else if !cpu.HaveAsm() {
			name = "asm=generic"
		}
		t.Run(name, func(t *testing.T) {
			defer cpu.SetGeneric(generic)()
			body(t)
		})
	}
}

// bothImpls returns f's result with the assembly kernels and with the
// generic ones.
func bothImpls[R any](f func() R) (asm, generic R) {
	asm = f()
	defer cpu.SetGeneric(true)()
	return asm, f()
}
