package node

import (
	"bufio"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"github.com/stokehq/stoke/net/wire"
)

// DetectHardware describes this machine: CPU model and logical cores,
// RAM, and the first NVIDIA GPU's name when the driver lists one. vram is
// the GPU memory offered (bytes; the caller's --vram).
func DetectHardware(vram uint64) wire.Hardware {
	h := wire.Hardware{Cores: uint32(runtime.NumCPU()), VRAM: vram, CPU: runtime.GOARCH}
	if v := procField("/proc/cpuinfo", "model name"); v != "" {
		h.CPU = v
	}
	if v := procField("/proc/meminfo", "MemTotal"); v != "" {
		f := strings.Fields(v) // "32768000 kB"
		if n, err := strconv.ParseUint(f[0], 10, 64); err == nil {
			h.RAM = n << 10
		}
	}
	if infos, _ := filepath.Glob("/proc/driver/nvidia/gpus/*/information"); len(infos) > 0 {
		h.GPU = procField(infos[0], "Model")
	}
	return h
}

// procField returns the value of the first "key: value" line of a /proc
// file ("" when absent).
func procField(path, key string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == key {
			return strings.TrimSpace(v)
		}
	}
	return ""
}
