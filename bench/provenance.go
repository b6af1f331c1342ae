package bench

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/stokehq/stoke/engine"
)

// Provenance is everything a published number needs next to it: what ran,
// on what, from which file.
type Provenance struct {
	Time    string   `json:"time"`    // UTC, RFC 3339
	Command []string `json:"command"` // argv
	Stoke   string   `json:"stoke_version"`
	Go      string   `json:"go_version"`
	OS      string   `json:"os"`
	Arch    string   `json:"arch"`
	Model   Model    `json:"model"`
	Machine Machine  `json:"machine"`
}

// Model identifies the model file.
type Model struct {
	Path        string `json:"path"`
	SHA256      string `json:"sha256"`
	FileBytes   int64  `json:"file_bytes"`
	Arch        string `json:"arch"`
	Act         string `json:"activation"`
	DType       string `json:"dtype"` // the FFN weights' type
	Params      int64  `json:"params"`
	WeightBytes int64  `json:"weight_bytes"`
	Layers      int    `json:"layers"`
	Dim         int    `json:"dim"`
	FFN         int    `json:"ffn"`
	Sparsity    string `json:"sparsity"`          // how cpu and hybrid pick active neurons
	Profile     string `json:"profile,omitempty"` // firing-frequency profile file
}

// Machine describes where the numbers came from.
type Machine struct {
	CPU          string  `json:"cpu"`
	Cores        int     `json:"cores"` // logical CPUs Go sees
	Threads      int     `json:"threads"`
	RAMBytes     int64   `json:"ram_bytes"`
	CPUBandwidth float64 `json:"cpu_read_bandwidth"` // bytes/s, measured
	// The device the sweep offloads to.
	Device          string  `json:"device"` // e.g. "cpu-capped (stand-in for a GPU)"
	DeviceKind      string  `json:"device_kind"`
	GPU             string  `json:"gpu,omitempty"`
	GPUDriver       string  `json:"gpu_driver,omitempty"`
	GPUMemory       int64   `json:"gpu_memory_bytes,omitempty"`
	DeviceBandwidth float64 `json:"device_read_bandwidth"` // bytes/s; 0 when unknown
	DeviceBWSource  string  `json:"device_bandwidth_source"`
	// LoadBefore and LoadAfter are the 1-minute load averages when the
	// sweep started and ended (Linux; -1 elsewhere): on a shared machine,
	// a load above the core count means the numbers were measured while
	// other work competed for the cores.
	LoadBefore float64 `json:"load_avg_before"`
	LoadAfter  float64 `json:"load_avg_after"`
}

// LoadAverage is the 1-minute load average (Linux /proc/loadavg), -1
// when unknown.
func LoadAverage() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return -1
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return -1
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return -1
	}
	return v
}

// BuildVersion, when set at link time
// (-ldflags "-X github.com/stokehq/stoke/bench.BuildVersion=v0.3.0"),
// is Stoke's version.
var BuildVersion string

// Version is Stoke's version: BuildVersion, else the VCS revision or
// module version from the build info, else `git describe --always
// --dirty --tags` in the working directory, else "unknown".
func Version() string {
	if BuildVersion != "" {
		return BuildVersion
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		var rev, dirty string
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				if s.Value == "true" {
					dirty = "-dirty"
				}
			}
		}
		if rev != "" {
			return rev[:min(12, len(rev))] + dirty
		}
		if v := bi.Main.Version; v != "" && v != "(devel)" {
			return v
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "git", "describe", "--always", "--dirty", "--tags").Output()
	if err == nil {
		if v := strings.TrimSpace(string(out)); v != "" {
			return "git:" + v
		}
	}
	return "unknown"
}

// FileSHA256 hashes a file.
func FileSHA256(path string) (string, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, err
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// DescribeModel fills Model from a loaded model, hashing its file.
func DescribeModel(m *engine.Model) (Model, error) {
	c := &m.Config
	mi := Model{Path: m.Path, Arch: c.Family.Name, Act: c.Act.String(), Params: m.ParamCount(), WeightBytes: m.WeightBytes(),
		Layers: c.Layers, Dim: c.Dim, FFN: c.FFN}
	if c.DReLU {
		mi.Act = "drelu"
	}
	if c.PowerInfer {
		mi.Arch += " (PowerInfer layout)"
	}
	if len(m.W.Layers) > 0 && m.W.Layers[0].Up != nil {
		mi.DType = m.W.Layers[0].Up.Type.String()
	}
	if m.Path != "" {
		sum, n, err := FileSHA256(m.Path)
		if err != nil {
			return mi, err
		}
		mi.SHA256, mi.FileBytes = sum, n
	}
	return mi, nil
}

// DescribeMachine reads the CPU model and RAM (Linux /proc; empty
// elsewhere) and the core count.
func DescribeMachine() Machine {
	mc := Machine{Cores: runtime.NumCPU()}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				mc.CPU = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "MemTotal:" {
				if kb, err := strconv.ParseInt(f[1], 10, 64); err == nil {
					mc.RAMBytes = kb << 10
				}
			}
		}
	}
	if mc.CPU == "" {
		mc.CPU = runtime.GOARCH
	}
	return mc
}

// NvidiaSMI asks nvidia-smi (when installed) for the first GPU's name,
// driver version and memory; ok is false without it.
func NvidiaSMI() (name, driver string, memory int64, ok bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "nvidia-smi", "--query-gpu=name,driver_version,memory.total",
		"--format=csv,noheader,nounits").Output()
	if err != nil {
		return "", "", 0, false
	}
	line, _, _ := bytes.Cut(out, []byte("\n"))
	f := strings.Split(string(line), ",")
	if len(f) < 3 {
		return "", "", 0, false
	}
	mib, _ := strconv.ParseInt(strings.TrimSpace(f[2]), 10, 64)
	return strings.TrimSpace(f[0]), strings.TrimSpace(f[1]), mib << 20, true
}

// NewProvenance stamps the time, argv, version and Go toolchain.
func NewProvenance(args []string) Provenance {
	return Provenance{Time: time.Now().UTC().Format(time.RFC3339), Command: args, Stoke: Version(),
		Go: runtime.Version(), OS: runtime.GOOS, Arch: runtime.GOARCH}
}
