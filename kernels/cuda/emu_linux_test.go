//go:build linux

package cuda

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/ebitengine/purego"
)

// The emulator runs kernels.cu as host C++ (emu/emu.cpp): a device whose
// memory is host memory and whose launches execute every thread of every
// block, switching between threads at barriers. It checks the kernels'
// indexing, the launch geometry, the parameter marshalling and the whole
// backend on a machine without a GPU; it says nothing about speed, and
// nothing about the real driver binding.

// emuDevice is a device backed by the emulator library.
type emuDevice struct {
	launchFn   func(name string, gx, gy, gz, bx, by, bz uint32, p *unsafe.Pointer) int32
	mallocDev  func(n uint64) uint64
	mallocHost func(n uint64) *byte
	freeDev    func(p uint64)
	freeHost   func(p *byte)
	memsetFn   func(p uint64, v int32, n uint64)
	memcpyFn   func(dst, src, n uint64)
	used       int64
	t0         time.Time
	noMap      bool // refuse mapped host memory (the backend's fallback path)
}

const emuTotal = 4 << 30

func loadEmu(lib string) (*emuDevice, error) {
	h, err := purego.Dlopen(lib, purego.RTLD_NOW|purego.RTLD_LOCAL)
	if err != nil {
		return nil, err
	}
	d := &emuDevice{}
	for _, s := range []struct {
		fn   any
		name string
	}{
		{&d.launchFn, "emu_launch"}, {&d.mallocDev, "emu_malloc"}, {&d.mallocHost, "emu_malloc"},
		{&d.freeDev, "emu_free"}, {&d.freeHost, "emu_free"}, {&d.memsetFn, "emu_memset"}, {&d.memcpyFn, "emu_memcpy"},
	} {
		p, err := purego.Dlsym(h, s.name)
		if err != nil {
			return nil, err
		}
		purego.RegisterFunc(s.fn, p)
	}
	return d, nil
}

func addr(b []byte) uint64 { return uint64(uintptr(unsafe.Pointer(&b[0]))) }

func (d *emuDevice) alloc(n int64) (uint64, error) {
	if d.used+n > emuTotal {
		return 0, errOOM(n)
	}
	p := d.mallocDev(uint64(n))
	if p == 0 {
		return 0, errOOM(n)
	}
	d.used += n
	return p, nil
}
func (d *emuDevice) free(p uint64) error            { d.freeDev(p); return nil }
func (d *emuDevice) memset(p uint64, n int64) error { d.memsetFn(p, 0, uint64(n)); return nil }
func (d *emuDevice) htod(dst uint64, src []byte) error {
	d.memcpyFn(dst, addr(src), uint64(len(src)))
	return nil
}
func (d *emuDevice) dtoh(dst []byte, src uint64) error {
	d.memcpyFn(addr(dst), src, uint64(len(dst)))
	return nil
}
func (d *emuDevice) hostAlloc(n int, mapped bool) ([]byte, uint64, error) {
	if mapped && d.noMap {
		return nil, 0, errors.New("emu: no mapped host memory")
	}
	p := d.mallocHost(uint64(n))
	if p == nil {
		return nil, 0, errors.New("emu: host allocation failed")
	}
	s := unsafe.Slice(p, n)
	return s, addr(s), nil
}
func (d *emuDevice) hostFree(b []byte) error { d.freeHost(&b[0]); return nil }
func (d *emuDevice) launch(k kernelID, grid, block [3]uint32, params *unsafe.Pointer) error {
	if r := d.launchFn(kernelSpecs[k].name, grid[0], grid[1], grid[2], block[0], block[1], block[2], params); r != 0 {
		return fmt.Errorf("emu: launching %s (grid %v, block %v): code %d", kernelSpecs[k].name, grid, block, r)
	}
	return nil
}
func (d *emuDevice) sync() error { return nil }
func (d *emuDevice) memInfo() (free, total int64, err error) {
	return emuTotal - d.used, emuTotal, nil
}
func (d *emuDevice) timerStart() error { d.t0 = time.Now(); return nil }
func (d *emuDevice) timerStop() (time.Duration, error) {
	return time.Since(d.t0), nil
}
func (d *emuDevice) close() error { return nil }

var (
	emuOnce sync.Once
	emuLib  string
	emuErr  error
)

// errNoEmulator marks the reasons the emulator cannot be built here (no
// C++ compiler, no sources): tests skip on it and fail on anything else.
var errNoEmulator = errors.New("no kernel emulator")

// buildEmulator compiles emu/emu.cpp (with kernels.cu) into a shared
// library, once per process, cached in the temporary directory by a hash
// of the sources. The error wraps errNoEmulator when no C++ compiler or
// no sources are available; a failing compilation is a different error.
func buildEmulator() (string, error) {
	emuOnce.Do(func() { emuLib, emuErr = doBuildEmulator() })
	return emuLib, emuErr
}

// cxx finds a C++ compiler: g++ (the CUDA toolkit may install only a
// versioned one) or clang++.
func cxx() (string, error) {
	for _, name := range []string{"g++", "g++-12", "g++-11", "clang++"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("%w: no g++ or clang++", errNoEmulator)
}

var entryRE = regexp.MustCompile(`(?m)^\.visible \.entry (\w+)\(`)

func doBuildEmulator() (string, error) {
	gxx, err := cxx()
	if err != nil {
		return "", err
	}
	var table strings.Builder
	for _, m := range entryRE.FindAllStringSubmatch(ptx52, -1) {
		fmt.Fprintf(&table, "K(%s)\n", m[1])
	}
	h := sha256.New()
	h.Write([]byte(table.String()))
	srcs, _ := filepath.Glob("*.cu*")
	emuSrcs, _ := filepath.Glob("emu/*")
	if len(srcs) == 0 || len(emuSrcs) == 0 {
		return "", fmt.Errorf("%w: kernel sources not found (run the test from kernels/cuda)", errNoEmulator)
	}
	for _, f := range append(srcs, emuSrcs...) {
		b, err := os.ReadFile(f)
		if err != nil {
			return "", err
		}
		h.Write([]byte(f))
		h.Write(b)
	}
	dir := filepath.Join(os.TempDir(), "stoke-emu-"+hex.EncodeToString(h.Sum(nil))[:16])
	lib := filepath.Join(dir, "libstokeemu.so")
	if _, err := os.Stat(lib); err == nil {
		return lib, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(dir, "table.inc"), []byte(table.String()), 0o644); err != nil {
		return "", err
	}
	tmp := lib + fmt.Sprintf(".%d.tmp", os.Getpid())
	cmd := exec.Command(gxx, "-std=c++17", "-O2", "-shared", "-fPIC", "-DSTOKE_EMU", "-include", "emu/emu.h",
		"-I", dir, "-Wno-unknown-pragmas", "-o", tmp, "emu/emu.cpp")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building the emulator: %v\n%s", err, out)
	}
	return lib, os.Rename(tmp, lib)
}

// openEmulator opens a backend on the emulator library lib, reporting sms
// multiprocessors (which shapes the AxpyRows and Attention splits).
func openEmulator(lib string, sms int, noMap bool) (*Backend, error) {
	d, err := loadEmu(lib)
	if err != nil {
		return nil, err
	}
	d.noMap = noMap
	return start(Config{}, func() (device, devInfo, error) {
		return d, devInfo{name: "emulator", cc: [2]int{5, 2}, sms: sms, l2: 1 << 20, total: emuTotal,
			driver: 12020, ptx: ptxImages[0]}, nil
	})
}

// Hooks for the external tests.
var (
	// BuildEmulator compiles the kernel emulator library and returns its path.
	BuildEmulator = buildEmulator
	// OpenEmulator opens a Backend whose device is the emulator.
	OpenEmulator = openEmulator
	// ErrNoEmulator: the emulator cannot be built on this machine.
	ErrNoEmulator = errNoEmulator
)
