package cpu_test

import (
	"testing"

	"github.com/stokehq/stoke/kernels/cpu"
)

// impl is one implementation of the kernels that a test can force: the
// assembly (AVX-512 VNNI and AVX-512 axpy kernels where the CPU has them,
// else AVX-VNNI ones where it has those), the AVX-VNNI assembly with
// AVX-512 switched off, the AVX2 assembly with both switched off, or the
// pure-Go twins.
type impl struct {
	name                   string
	generic, avx2, avxvnni bool
}

// impls returns the implementations this build and CPU can run, the
// default first: "asm" (or "asm=generic" where no assembly runs),
// "avxvnni" where the CPU has AVX-512 VNNI and AVX-VNNI, "avx2" where it
// has either (otherwise asm is AVX2), and "generic".
func impls() []impl {
	first := impl{name: "asm"}
	if !cpu.HaveAsm() {
		first.name = "asm=generic"
	}
	list := []impl{first}
	if cpu.HaveVNNI() && cpu.HaveAVXVNNI() {
		list = append(list, impl{name: "avxvnni", avxvnni: true})
	}
	if cpu.HaveVNNI() || cpu.HaveAVXVNNI() {
		list = append(list, impl{name: "avx2", avx2: true})
	}
	return append(list, impl{name: "generic", generic: true})
}

// use forces m and returns a function that restores the previous choice.
func (m impl) use() (restore func()) {
	r1 := cpu.SetGeneric(m.generic)
	r2 := cpu.SetVNNI(!m.avx2 && !m.avxvnni)
	r3 := cpu.SetAxpyAVX512(!m.avx2 && !m.avxvnni)
	r4 := cpu.SetAVXVNNI(!m.avx2)
	return func() { r4(); r3(); r2(); r1() }
}

// eachImpl runs body once per implementation (impls), so one suite checks
// them all.
func eachImpl(t *testing.T, body func(t *testing.T)) {
	t.Helper()
	for _, m := range impls() {
		t.Run(m.name, func(t *testing.T) {
			defer m.use()()
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

// avx2Impl returns f's result with the AVX2 kernels (AVX-512 VNNI and
// AVX-VNNI switched off).
func avx2Impl[R any](f func() R) R {
	defer cpu.SetVNNI(false)()
	defer cpu.SetAVXVNNI(false)()
	return f()
}
