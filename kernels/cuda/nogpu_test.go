package cuda_test

import (
	"os"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/stokehq/stoke/kernels/cuda"
)

// These tests run everywhere: no GPU needed.

// oneLine checks err is the clear one-line refusal Open promises.
func oneLine(t *testing.T, err error) string {
	t.Helper()
	if err == nil {
		t.Fatal("Open succeeded")
	}
	msg := err.Error()
	if strings.Contains(msg, "\n") || !strings.HasPrefix(msg, "cuda: ") {
		t.Fatalf("error is not one line starting with \"cuda: \": %q", msg)
	}
	return msg
}

// TestOpenNoLibrary: without libcuda Open fails with a reason, through the
// option and through $STOKE_LIBCUDA.
func TestOpenNoLibrary(t *testing.T) {
	linuxOnly(t)
	const missing = "libcuda-stoke-missing.so.1"
	msg := oneLine(t, openErr(cuda.Config{Library: missing}))
	if !strings.Contains(msg, "cannot load "+missing) || !strings.Contains(msg, "NVIDIA driver") {
		t.Errorf("error does not say the driver library is missing: %q", msg)
	}
	t.Setenv("STOKE_LIBCUDA", missing)
	msg = oneLine(t, openErr(cuda.Config{}))
	if !strings.Contains(msg, "cannot load "+missing) {
		t.Errorf("$STOKE_LIBCUDA not used: %q", msg)
	}
}

// TestOpenNoDevice: with libcuda present but no GPU (the toolkit's stub
// library, or a driver without a device), cuInit fails and Open says there
// is no device. CI sets STOKE_EXPECT_LIBCUDA=1, where the library must
// load; elsewhere a missing library skips.
func TestOpenNoDevice(t *testing.T) {
	linuxOnly(t)
	b, err := cuda.Open(cuda.Config{})
	if err == nil {
		d := b.Device()
		_ = b.Close()
		t.Skipf("a CUDA device is present (%s)", d.Name)
	}
	msg := oneLine(t, err)
	if strings.Contains(msg, "cannot load") {
		if os.Getenv("STOKE_EXPECT_LIBCUDA") == "1" {
			t.Fatalf("STOKE_EXPECT_LIBCUDA=1 but: %s", msg)
		}
		t.Skipf("libcuda.so.1 not installed: %s", msg)
	}
	t.Logf("Open: %s", msg)
	if !strings.Contains(msg, "no CUDA device") && !strings.Contains(msg, "did not initialise") {
		t.Errorf("error does not say why: %q", msg)
	}
}

func linuxOnly(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the CUDA backend binds libcuda.so.1: Linux only")
	}
}

func openErr(cfg cuda.Config) error {
	b, err := cuda.Open(cfg)
	if err == nil {
		_ = b.Close()
	}
	return err
}

var (
	entryRE = regexp.MustCompile(`(?m)^\.visible \.entry (\w+)\(([^)]*)\)`)
	paramRE = regexp.MustCompile(`\.param (?:\.align \d+ )?\.(\w+) \w+(\[\d+\])?`)
)

// ptxEntries parses the .entry declarations: name → parameter letters
// (p/l for .u64, i for .u32, f for .f32, R for a 2048-byte struct).
func ptxEntries(t *testing.T, text string) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, e := range entryRE.FindAllStringSubmatch(text, -1) {
		var sig strings.Builder
		for _, p := range paramRE.FindAllStringSubmatch(e[2], -1) {
			switch {
			case p[1] == "u64":
				sig.WriteByte('8')
			case p[1] == "u32":
				sig.WriteByte('i')
			case p[1] == "f32":
				sig.WriteByte('f')
			case p[1] == "b8" && p[2] == "[2048]":
				sig.WriteByte('R')
			default:
				t.Fatalf("entry %s: unexpected parameter %q", e[1], p[0])
			}
		}
		m[e[1]] = sig.String()
	}
	return m
}

// TestPTX: both PTX files are embedded, declare nvcc 11.8's ISA and the
// right target, and define exactly the launch table's entry points with
// the parameter sizes the Go side passes.
func TestPTX(t *testing.T) {
	want := cuda.KernelNames()
	for _, tc := range []struct{ target, sm string }{{"compute_52", "sm_52"}, {"compute_80", "sm_80"}} {
		text := cuda.PTX(tc.target)
		if len(text) < 1000 {
			t.Fatalf("%s PTX is missing or empty (%d bytes)", tc.target, len(text))
		}
		if !strings.Contains(text, "\n.version 7.8\n") || !strings.Contains(text, "\n.target "+tc.sm+"\n") {
			t.Errorf("%s PTX does not declare .version 7.8 / .target %s", tc.target, tc.sm)
		}
		got := ptxEntries(t, text)
		var missing, extra []string
		for name, params := range want {
			sig, ok := got[name]
			if !ok {
				missing = append(missing, name)
				continue
			}
			g := strings.NewReplacer("p", "8", "l", "8").Replace(params)
			if sig != g {
				t.Errorf("%s %s: PTX parameters %s, Go passes %s (%s)", tc.target, name, sig, g, params)
			}
		}
		for name := range got {
			if _, ok := want[name]; !ok {
				extra = append(extra, name)
			}
		}
		slices.Sort(missing)
		slices.Sort(extra)
		if len(missing)+len(extra) > 0 {
			t.Errorf("%s PTX vs launch table: missing %v, not in the table %v", tc.target, missing, extra)
		}
	}
}

// TestPTXBaseline: the compute_52 PTX has no f16 arithmetic (Maxwell has
// none, consumer Pascal runs it at 1/64), no dp4a (sm_61+) and no
// tensor-core instruction (sm_70+); conversions (cvt) are allowed.
func TestPTXBaseline(t *testing.T) {
	text := cuda.PTX("compute_52")
	bad := regexp.MustCompile(`(?m)^\s*(?:@%p\d+\s+)?((?:add|sub|mul|fma|neg|abs|min|max|ex2|rcp|sqrt|tanh|setp|set)\.[\w.]*(?:f16|bf16)\w*|dp4a\S*|dp2a\S*|w?mma\S*|ldmatrix\S*)\s`)
	if m := bad.FindAllStringSubmatch(text, 5); len(m) > 0 {
		var ins []string
		for _, x := range m {
			ins = append(ins, x[1])
		}
		t.Errorf("compute_52 PTX uses instructions the baseline must not: %v", ins)
	}
}

func TestChoosePTX(t *testing.T) {
	for _, tc := range []struct {
		cc     [2]int
		driver int
		want   string // target, or a substring of the error
	}{
		{[2]int{5, 0}, 12020, "compute capability 5.0"},
		{[2]int{5, 2}, 12020, "compute_52"},
		{[2]int{6, 1}, 11080, "compute_52"},
		{[2]int{7, 5}, 13000, "compute_52"},
		{[2]int{8, 0}, 12020, "compute_80"},
		{[2]int{8, 6}, 12020, "compute_80"},
		{[2]int{9, 0}, 13000, "compute_80"},
		{[2]int{6, 1}, 11070, "520.61.05"},
		{[2]int{8, 6}, 11040, "520.61.05"},
	} {
		got, err := cuda.ChoosePTX(tc.cc, tc.driver)
		if err != nil {
			got = err.Error()
			if strings.Contains(got, "\n") {
				t.Errorf("cc %v driver %d: multi-line error %q", tc.cc, tc.driver, got)
			}
		}
		if !strings.Contains(got, tc.want) {
			t.Errorf("cc %v driver %d: got %q, want %q", tc.cc, tc.driver, got, tc.want)
		}
	}
}

// TestSplits: the work splits stay within scratch and counters and give
// every split rows.
func TestSplits(t *testing.T) {
	for _, sms := range []int{1, 10, 28, 132} {
		for _, nIdx := range []int{0, 1, 7, 100, 1100, 11008, 100000} {
			for _, cols := range []int{32, 1024, 4096, 5120, 1 << 20} {
				tiles := (cols + 1023) / 1024
				s, rps := cuda.AxpySplits(nIdx, cols, tiles, sms)
				if s < 1 || s > 65535 || s*cols*4 > 4<<20 && s > 1 || (nIdx > 0 && (s-1)*rps >= nIdx) || s*rps < nIdx {
					t.Errorf("AxpySplits(%d, %d, %d, %d) = %d, %d", nIdx, cols, tiles, sms, s, rps)
				}
			}
		}
		for _, n := range []int{1, 3, 512} {
			for _, pos := range []int{0, 100, 4095, 100000} {
				for _, heads := range []int{1, 32, 64} {
					s := cuda.AttnSplits(n, pos, heads, 128, sms)
					if s < 1 || s > 65535 || s > 1 && (n*heads*s*130*4 > 4<<20 || n*heads > 4096) {
						t.Errorf("AttnSplits(%d, %d, %d, 128, %d) = %d", n, pos, heads, sms, s)
					}
				}
			}
		}
	}
}
