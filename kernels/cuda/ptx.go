package cuda

import (
	_ "embed"
	"fmt"
	"strconv"
	"strings"
)

// The kernels are CUDA C in kernels.cu (and the .cuh files it includes),
// compiled by gen.sh with nvcc 11.8 to PTX for two virtual architectures
// and committed: compute_52 (Maxwell, Pascal, Volta, Turing: f32
// arithmetic only) and compute_80 (Ampere and later). The driver
// JIT-compiles the PTX for the card when the backend opens (and caches the
// result). Regenerate with `go generate ./kernels/cuda` after changing a
// .cu/.cuh file; CI (.ci/ptx) checks the committed PTX is what the source
// gives and that ptxas assembles it for sm_52, sm_61, sm_75, sm_86, sm_90.

//go:generate sh gen.sh

//go:embed ptx/kernels_52.ptx
var ptx52 string

//go:embed ptx/kernels_80.ptx
var ptx80 string

// ptxImage is one embedded PTX module.
type ptxImage struct {
	target string // "compute_52"
	arch   int    // 52
	isa    string // the PTX ISA version of its .version line, e.g. "7.8"
	text   string
}

var ptxImages = [...]*ptxImage{
	{target: "compute_52", arch: 52, text: ptx52},
	{target: "compute_80", arch: 80, text: ptx80},
}

func init() {
	for _, p := range ptxImages {
		p.isa = ptxVersion(p.text)
	}
}

// ptxVersion returns the ISA version the PTX declares (".version 7.8").
func ptxVersion(text string) string {
	for line := range strings.Lines(text) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), ".version "); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// ptxDrivers maps a PTX ISA version to the CUDA release that introduced it
// (the driver API version, as cuDriverGetVersion reports it) and the
// minimum Linux driver of that release (NVIDIA's CUDA toolkit release
// notes, table 3). A driver older than that cannot JIT the PTX.
var ptxDrivers = map[string]struct {
	cuda   int
	driver string
}{
	"7.0": {11000, "450.51.06"},
	"7.1": {11010, "455.23"},
	"7.2": {11020, "460.27.03"},
	"7.3": {11030, "465.19.01"},
	"7.4": {11040, "470.42.01"},
	"7.5": {11050, "495.29.05"},
	"7.6": {11060, "510.39.01"},
	"7.7": {11070, "515.43.04"},
	"7.8": {11080, "520.61.05"},
	"8.0": {12000, "525.60.13"},
	"8.1": {12010, "530.30.02"},
	"8.2": {12020, "535.54.03"},
	"8.3": {12030, "545.23.06"},
	"8.4": {12040, "550.54.14"},
	"8.5": {12050, "555.42.02"},
	"8.7": {12080, "570.26"},
	"8.8": {12090, "575.51.03"},
	"9.0": {13000, "580.65.06"},
}

// minDriverNote names the driver a PTX ISA version needs.
func minDriverNote(isa string) string {
	if d, ok := ptxDrivers[isa]; ok {
		return fmt.Sprintf("it needs CUDA %s, NVIDIA driver %s or newer", cudaVersion(d.cuda), d.driver)
	}
	return "update the NVIDIA driver"
}

// cudaVersion formats a driver API version (12020 → "12.2").
func cudaVersion(v int) string {
	return strconv.Itoa(v/1000) + "." + strconv.Itoa(v%1000/10)
}

// choosePTX picks the PTX for a device of compute capability cc whose
// driver reports API version driver: compute_80 from cc 8.0, compute_52
// from 5.2. Older devices, and drivers older than the PTX ISA, are refused
// with the reason.
func choosePTX(cc [2]int, driver int, name string) (*ptxImage, error) {
	v := cc[0]*10 + cc[1]
	if v < 52 {
		return nil, fmt.Errorf("%s has compute capability %d.%d; Stoke's kernels need 5.2 (Maxwell GTX 9xx) or newer", name, cc[0], cc[1])
	}
	p := ptxImages[0]
	if v >= 80 {
		p = ptxImages[1]
	}
	if d, ok := ptxDrivers[p.isa]; ok && driver < d.cuda {
		return nil, fmt.Errorf("the NVIDIA driver supports CUDA %s, too old for Stoke's %s PTX (ISA %s): %s", cudaVersion(driver), p.target, p.isa, minDriverNote(p.isa))
	}
	return p, nil
}

// firstLine returns s up to its first newline.
func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}
