package cpu_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestAsmIsAVX2Only checks the generated assembly: it must say it is
// generated, and use no register that needs AVX-512 (X16–X31, Y16–Y31,
// Z, K). avo's register allocator takes those when more than sixteen
// vectors are live; the code would then run on this machine's CPU and
// crash on an AVX2-only one. The AVX-512 VNNI kernels (vnni_amd64.s)
// and the kernels named …AVX512 (axpy_amd64.s) or …VNNI (q4x16_amd64.s),
// which run only where the CPU has AVX-512, are exempt.
func TestAsmIsAVX2Only(t *testing.T) {
	files, err := filepath.Glob("*_amd64.s")
	if err != nil || len(files) == 0 {
		t.Fatalf("no assembly files (%v)", err)
	}
	evex := regexp.MustCompile(`\b([XY](1[6-9]|2[0-9]|3[01])|Z([0-9]|[12][0-9]|3[01])|K[0-7])\b`)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		src := string(b)
		if !strings.Contains(src, "DO NOT EDIT") {
			t.Errorf("%s: not marked as generated", f)
		}
		if strings.Contains(f, "vnni") {
			continue
		}
		fn := "" // the function the line is in
		for i, line := range strings.Split(src, "\n") {
			if name, ok := strings.CutPrefix(line, "TEXT ·"); ok {
				fn, _, _ = strings.Cut(name, "(")
			}
			if strings.HasSuffix(fn, "AVX512") || strings.HasSuffix(fn, "VNNI") {
				continue // dispatched only where the CPU has AVX-512
			}
			code, _, _ := strings.Cut(line, "//")
			if m := evex.FindString(code); m != "" {
				t.Errorf("%s:%d: uses %s, which needs AVX-512: %s", f, i+1, m, strings.TrimSpace(line))
			}
		}
	}
}
