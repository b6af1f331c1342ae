package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
)

// LlamaBench builds and runs llama.cpp's llama-bench from a source tree the
// user supplies (Stoke ships no llama.cpp code), so both engines are
// measured on the same machine, file and thread count.
type LlamaBench struct {
	Src string // llama.cpp source directory
	Bin string // path of the built llama-bench
	Log io.Writer
}

// BuildLlamaBench configures and builds llama-bench under DIR/build-stoke
// with CMake (CPU only, native instructions), reusing a previous build.
func BuildLlamaBench(ctx context.Context, src string, log io.Writer) (*LlamaBench, error) {
	if _, err := os.Stat(filepath.Join(src, "CMakeLists.txt")); err != nil {
		return nil, fmt.Errorf("bench: %s does not look like a llama.cpp source tree (no CMakeLists.txt)", src)
	}
	if _, err := exec.LookPath("cmake"); err != nil {
		return nil, errors.New("bench: building llama.cpp needs cmake (apt-get install cmake)")
	}
	build := filepath.Join(src, "build-stoke")
	lb := &LlamaBench{Src: src, Log: log}
	for _, p := range []string{filepath.Join(build, "bin", "llama-bench"), filepath.Join(build, "bin", "Release", "llama-bench")} {
		if _, err := os.Stat(p); err == nil {
			lb.Bin = p
			return lb, nil
		}
	}
	steps := [][]string{
		{"cmake", "-S", src, "-B", build, "-DCMAKE_BUILD_TYPE=Release", "-DGGML_NATIVE=ON", "-DGGML_CUDA=OFF", "-DLLAMA_CURL=OFF"},
		{"cmake", "--build", build, "--target", "llama-bench", "-j", strconv.Itoa(runtime.NumCPU())},
	}
	for _, st := range steps {
		cmd := exec.CommandContext(ctx, st[0], st[1:]...)
		cmd.Stdout, cmd.Stderr = log, log
		if err := cmd.Run(); err != nil {
			return nil, fmt.Errorf("bench: %v: %w", st, err)
		}
	}
	lb.Bin = filepath.Join(build, "bin", "llama-bench")
	if _, err := os.Stat(lb.Bin); err != nil {
		return nil, fmt.Errorf("bench: build finished but %s is missing", lb.Bin)
	}
	return lb, nil
}

// LlamaBenchBinary uses an already built llama-bench at path.
func LlamaBenchBinary(path string, log io.Writer) (*LlamaBench, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("bench: llama-bench: %w", err)
	}
	if st.IsDir() || st.Mode()&0o111 == 0 {
		return nil, fmt.Errorf("bench: %s is not an executable llama-bench", path)
	}
	return &LlamaBench{Bin: path, Log: log}, nil
}

// Run measures pp and tg with llama-bench on model, all on the CPU.
func (lb *LlamaBench) Run(ctx context.Context, model string, o Options) ([]Result, error) {
	return lb.RunNGL(ctx, model, o, 0)
}

// RunNGL measures pp and tg with llama-bench on model with ngl layers
// offloaded to its GPU (llama.cpp counts the output head as one layer
// more than the model's blocks; a CPU-only build ignores -ngl).
func (lb *LlamaBench) RunNGL(ctx context.Context, model string, o Options, ngl int) ([]Result, error) {
	if o.Repeat <= 0 {
		o.Repeat = 3
	}
	args := []string{"-m", model, "-t", strconv.Itoa(max(o.Threads, 1)), "-p", strconv.Itoa(o.PromptLen),
		"-n", strconv.Itoa(o.GenLen), "-r", strconv.Itoa(o.Repeat), "-ngl", strconv.Itoa(ngl), "-o", "json"}
	if o.NoMmap {
		args = append(args, lb.noMmapArgs(ctx)...)
	}
	cmd := exec.CommandContext(ctx, lb.Bin, args...)
	cmd.Stderr = lb.Log
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("bench: llama-bench %v: %w", args, err)
	}
	return ParseLlamaBenchJSON(out)
}

// noMmapArgs returns llama-bench's flags for loading the model without
// mmap: "-lm none" where it has --load-mode (2026 builds), "-mmp 0" in the
// builds before, told apart by its --help.
func (lb *LlamaBench) noMmapArgs(ctx context.Context) []string {
	help, _ := exec.CommandContext(ctx, lb.Bin, "--help").CombinedOutput()
	return noMmapFlags(help)
}

// noMmapFlags picks noMmapArgs' flags from llama-bench's --help text.
func noMmapFlags(help []byte) []string {
	if bytes.Contains(help, []byte("--load-mode")) {
		return []string{"-lm", "none"}
	}
	return []string{"-mmp", "0"}
}

// ParseLlamaBenchJSON reads llama-bench's `-o json` output: an array of
// tests with n_prompt, n_gen, n_threads, avg_ts, stddev_ts and samples_ts.
func ParseLlamaBenchJSON(b []byte) ([]Result, error) {
	var rows []struct {
		NPrompt   int       `json:"n_prompt"`
		NGen      int       `json:"n_gen"`
		NThreads  int       `json:"n_threads"`
		AvgTS     float64   `json:"avg_ts"`
		StdDevTS  float64   `json:"stddev_ts"`
		SamplesTS []float64 `json:"samples_ts"`
	}
	if err := json.Unmarshal(b, &rows); err != nil {
		return nil, fmt.Errorf("bench: llama-bench output is not the JSON expected: %w", err)
	}
	var out []Result
	for _, r := range rows {
		res := Result{Threads: r.NThreads, TokPerSec: r.AvgTS, StdDev: r.StdDevTS, Samples: r.SamplesTS}
		switch {
		case r.NPrompt > 0 && r.NGen == 0:
			res.Test, res.Tokens = fmt.Sprintf("pp%d", r.NPrompt), r.NPrompt
		case r.NGen > 0 && r.NPrompt == 0:
			res.Test, res.Tokens = fmt.Sprintf("tg%d", r.NGen), r.NGen
		default:
			continue
		}
		if len(r.SamplesTS) > 0 {
			res.TokPerSec, _ = medianStd(r.SamplesTS)
		}
		out = append(out, res)
	}
	if len(out) == 0 {
		return nil, errors.New("bench: llama-bench reported no pp or tg test")
	}
	return out, nil
}
