package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

type planOut struct {
	Mode       string  `json:"mode"`
	Budget     int64   `json:"budget"`
	TotalBytes int64   `json:"total_bytes"`
	Weights    int64   `json:"weight_bytes"`
	Output     bool    `json:"output_on_device"`
	HitRate    float64 `json:"hit_rate"`
	Layers     []struct {
		Attn    bool    `json:"attn"`
		Hot     int     `json:"hot"`
		Neurons int     `json:"neurons"`
		Bytes   int64   `json:"bytes"`
		HitRate float64 `json:"hit_rate"`
	} `json:"layers"`
	Regions []struct {
		Name   string `json:"name"`
		Offset int64  `json:"offset"`
		Bytes  int64  `json:"bytes"`
	} `json:"regions"`
	Roofline struct {
		DRAM   float64 `json:"dram_bandwidth"`
		CPUTPS float64 `json:"cpu_tokens_per_s"`
		GPUs   []struct {
			Name   string   `json:"name"`
			TPS    *float64 `json:"tokens_per_s"`
			OwnTPS *float64 `json:"own_tokens_per_s"`
		} `json:"gpus"`
	} `json:"roofline"`
}

func planJSONOut(t *testing.T, args ...string) planOut {
	t.Helper()
	out, e, code := stoke(t, append([]string{"plan", "--json", "--dram-bw", "20"}, args...)...)
	if code != 0 {
		t.Fatalf("plan %v: exit %d: %s", args, code, e)
	}
	var p planOut
	if err := json.Unmarshal([]byte(out), &p); err != nil {
		t.Fatalf("plan --json is not JSON: %v\n%s", err, out)
	}
	return p
}

// TestPlanCLI plans a synthetic ReLU model with and without a profile, in
// both device modes, and checks the JSON against the budget.
func TestPlanCLI(t *testing.T) {
	dir := t.TempDir()
	model := filepath.Join(dir, "relu.gguf")
	if _, e, code := stoke(t, "synth", "--out", model, "--params", "2M", "--dtype", "q8_0", "--relu", "--hot", "0.1", "--seed", "3"); code != 0 {
		t.Fatalf("synth: %s", e)
	}
	var text strings.Builder
	for i := range 60 {
		fmt.Fprintf(&text, "Story %d: the little fox ran to the river and saw %d fish. ", i, i*7%13)
	}
	textPath := filepath.Join(dir, "text.txt")
	if err := os.WriteFile(textPath, []byte(text.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	prof := filepath.Join(dir, "prof.gguf")
	if out, e, code := stoke(t, "profile", "-m", model, "--text", textPath, "--out", prof, "--ctx", "128", "--max-tokens", "256", "--samples", "16"); code != 0 {
		t.Fatalf("profile: exit %d: %s%s", code, out, e)
	}

	for _, args := range [][]string{
		{"--vram", "90%"},
		{"--vram", "90%", "--profile", prof},
		{"--vram", "90%", "--profile", prof, "--parallel", "2", "--kv-type", "f16", "--device-bw", "360"},
		{"--vram", "200%", "--profile", prof},
		{"--vram", "120%", "--mode", "layer-split"},
		{"--vram", "1GiB", "--reserve", "10%", "--mode", "layer-split", "--layers", "1"},
		{"--vram", "0", "--mode", "cpu"},
		{"--vram", "0"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			p := planJSONOut(t, append([]string{"-m", model, "--ctx", "128", "--batch", "4"}, args...)...)
			if p.TotalBytes > p.Budget || p.Budget <= 0 && p.Mode != "cpu" || len(p.Layers) == 0 {
				t.Fatalf("total %d, budget %d, %d layers", p.TotalBytes, p.Budget, len(p.Layers))
			}
			var end, layers int64
			for _, r := range p.Regions {
				if r.Offset != end || r.Offset%256 != 0 {
					t.Fatalf("region %+v at end %d", r, end)
				}
				end = r.Offset + (r.Bytes+255)/256*256
			}
			if end != p.TotalBytes {
				t.Fatalf("regions end at %d, total %d", end, p.TotalBytes)
			}
			for _, l := range p.Layers {
				layers += l.Bytes
			}
			if layers > p.TotalBytes || len(p.Roofline.GPUs) != 6 || p.Roofline.DRAM != 20e9 || !(p.Roofline.CPUTPS > 0) {
				t.Fatalf("layers %d of %d bytes, roofline %+v", layers, p.TotalBytes, p.Roofline)
			}
			if g := p.Roofline.GPUs[5]; g.OwnTPS == nil || g.TPS == nil || *g.OwnTPS <= p.Roofline.CPUTPS {
				t.Fatalf("H100 row: %+v", g)
			}
			switch {
			case p.Mode == "cpu":
				if p.TotalBytes != 0 {
					t.Fatalf("cpu plan takes %d bytes", p.TotalBytes)
				}
			case args[1] == "200%":
				if !p.Output || p.HitRate != 1 {
					t.Fatalf("200%%: output %v, hit rate %v", p.Output, p.HitRate)
				}
			case len(args) > 2 && args[2] == "--profile" && p.Mode == "hybrid":
				// the planted hot neurons go first: the hit rate beats
				// the share of neurons placed
				var hot, all int
				for _, l := range p.Layers {
					hot, all = hot+l.Hot, all+l.Neurons
				}
				if hot == 0 || p.HitRate < 1.5*float64(hot)/float64(all) {
					t.Fatalf("profile: hit rate %.3f with %d/%d neurons hot", p.HitRate, hot, all)
				}
				t.Logf("hit rate %.3f with %d/%d neurons hot", p.HitRate, hot, all)
			}
		})
	}

	out, e, code := stoke(t, "plan", "-m", model, "--vram", "150%", "--profile", prof, "--dram-bw", "20", "--ctx", "256")
	if code != 0 || !strings.Contains(out, "expected hit rate") || !strings.Contains(out, "RTX 3060 12GB") || !strings.Contains(out, "tok/s") {
		t.Fatalf("plan text: exit %d\n%s%s", code, out, e)
	}
	t.Logf("\n%s", out)

	for _, c := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"plan", "-m", model}, 2, "--vram"},
		{[]string{"plan", "-m", model, "--vram", "lots"}, 2, "size"},
		{[]string{"plan", "-m", model, "--vram", "1GiB", "--mode", "fast"}, 2, "mode"},
		{[]string{"plan", "-m", model, "--vram", "1GiB", "--reserve", "2GiB"}, 2, "reserve"},
		{[]string{"plan", "-m", model, "--vram", "4KiB", "--mode", "layer-split", "--layers", "1", "--dram-bw", "20"}, 1, "fits"},
		{[]string{"plan", "-m", model, "--vram", "4KiB", "--dram-bw", "20"}, 0, ""}, // hybrid places what fits: nothing
		{[]string{"plan", "-m", model, "--vram", "1MiB", "--mode", "layer-split", "--layers", "2", "--dram-bw", "20"}, 1, "fits"},
	} {
		if _, e, code := stoke(t, c.args...); code != c.code || !strings.Contains(e, c.msg) {
			t.Errorf("%v: exit %d (want %d): %s", c.args, code, c.code, e)
		}
	}
}

func TestParseSize(t *testing.T) {
	for s, want := range map[string]int64{
		"6GiB": 6 << 30, "6 GiB": 6 << 30, "6g": 6 << 30, "8GB": 8e9, "512MiB": 512 << 20, "1.5KiB": 1536,
		"123": 123, "0": 0, "50%": 500, "100%": 1000, "2B": 2,
	} {
		if got, err := parseSize(s, 1000); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", s, got, err, want)
		}
	}
	for _, s := range []string{"", "x", "-1GiB", "GiB", "-5%", "1e30"} {
		if _, err := parseSize(s, 1000); err == nil {
			t.Errorf("parseSize(%q) accepted", s)
		}
	}
}
