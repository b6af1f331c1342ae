package main

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/stokehq/stoke/bench"
)

// benchModel writes a tiny planted ReLU model in PowerInfer's layout and a
// profile of it over a short text.
func benchModel(t *testing.T) (model, prof string) {
	t.Helper()
	dir := t.TempDir()
	model = filepath.Join(dir, "relu.gguf")
	if _, e, code := stoke(t, "synth", "--out", model, "--params", "2M", "--dtype", "q4_0", "--relu", "--powerinfer", "--seed", "2"); code != 0 {
		t.Fatalf("synth: %s", e)
	}
	var text strings.Builder
	for i := range 40 {
		fmt.Fprintf(&text, "Story %d: the fox ran to the river and saw %d fish. ", i, i*7%13)
	}
	textPath := filepath.Join(dir, "text.txt")
	if err := os.WriteFile(textPath, []byte(text.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	prof = filepath.Join(dir, "prof.gguf")
	if out, e, code := stoke(t, "profile", "-m", model, "--text", textPath, "--out", prof, "--ctx", "64", "--max-tokens", "200", "--samples", "64", "--threads", "1"); code != 0 {
		t.Fatalf("profile: exit %d: %s%s", code, out, e)
	}
	return model, prof
}

func TestBenchSweepCLI(t *testing.T) {
	model, prof := benchModel(t)
	dir := t.TempDir()
	out := filepath.Join(dir, "sweep")
	// a stand-in llama-bench: logs its arguments, prints llama-bench's JSON
	fake := filepath.Join(dir, "llama-bench")
	argLog := filepath.Join(dir, "args.log")
	script := "#!/bin/sh\necho \"$@\" >> " + argLog + "\n" +
		`echo '[{"n_prompt": 4, "n_gen": 0, "n_threads": 1, "avg_ts": 50, "stddev_ts": 1, "samples_ts": [50]},` +
		` {"n_prompt": 0, "n_gen": 4, "n_threads": 1, "avg_ts": 20, "stddev_ts": 1, "samples_ts": [20]}]'` + "\n"
	if err := os.WriteFile(fake, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	stdout, e, code := stoke(t, "bench", "sweep", "-m", model, "--profile", prof, "--vram", "0,60%,200%",
		"--modes", "dense,cpu,layer-split,hybrid", "--out", out, "--threads", "1", "--prompt-len", "4", "--gen-len", "4",
		"--repeat", "1", "--cpu-bandwidth", "10", "--device", "cpu-capped", "--llama-bench", fake)
	if code != 0 {
		t.Fatalf("bench sweep: exit %d: %s\n%s", code, stdout, e)
	}
	if !strings.Contains(e, "cpu-capped (stand-in for a GPU)") {
		t.Errorf("stderr lacks the device label:\n%s", e)
	}
	args, err := os.ReadFile(argLog)
	if err != nil {
		t.Fatal(err)
	}
	// one run per distinct -ngl: 0 layers at 0 bytes, all of them (and the head) at 200%
	if !strings.Contains(string(args), "-ngl 0 ") || strings.Count(string(args), "-ngl") < 2 || !strings.Contains(string(args), "-m "+model) {
		t.Errorf("llama-bench runs:\n%s", args)
	}
	if !strings.Contains(stdout, "| hybrid | 200% |") || !strings.Contains(stdout, "sweep.png") {
		t.Errorf("stdout:\n%s", stdout)
	}
	f, err := os.Open(filepath.Join(out, "sweep.csv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(recs[0], bench.CSVColumns) || len(recs) != 1+2+2*3+3 {
		t.Fatalf("csv: %d records, header %q", len(recs), recs[0])
	}
	col := func(name string) int { return slices.Index(recs[0], name) }
	for _, r := range recs[1:] {
		if r[col("mode")] == "llama.cpp" {
			if r[col("tg_tps_median")] != "20" || r[col("ngl")] == "" {
				t.Errorf("llama.cpp row %q", r)
			}
			continue
		}
		if r[col("device")] != "host" && r[col("device")] != "cpu-capped (stand-in for a GPU)" {
			t.Errorf("device label %q", r[col("device")])
		}
		if r[col("status")] == "ok" {
			if v, err := strconv.ParseFloat(r[col("tg_tps_median")], 64); err != nil || !(v > 0) {
				t.Errorf("tg_tps_median %q", r[col("tg_tps_median")])
			}
			if v, err := strconv.ParseFloat(r[col("roofline_tg_tps")], 64); err != nil || !(v > 0) {
				t.Errorf("roofline_tg_tps %q", r[col("roofline_tg_tps")])
			}
		}
		if _, err := strconv.ParseInt(r[col("vram_budget_bytes")], 10, 64); err != nil {
			t.Errorf("vram_budget_bytes %q", r[col("vram_budget_bytes")])
		}
	}
	b, err := os.ReadFile(filepath.Join(out, "sweep.json"))
	if err != nil {
		t.Fatal(err)
	}
	var rep bench.SweepReport
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	pv := rep.Provenance
	if len(pv.Model.SHA256) != 64 || pv.Model.DType != "Q4_0" || pv.Model.Profile != prof || pv.Machine.Cores < 1 ||
		pv.Machine.CPUBandwidth != 10e9 || pv.Machine.DeviceKind != "cpu-capped" || pv.Stoke == "" || len(rep.LlamaBench) != 3 {
		t.Errorf("provenance %+v", pv)
	}
	if rep.Settings.GenLen != 4 || len(rep.Settings.Points) != 3 || len(rep.Rows) != 8 {
		t.Errorf("settings %+v, %d rows", rep.Settings, len(rep.Rows))
	}
	for _, name := range []string{"sweep.png", "sweep.svg", "summary.md"} {
		if st, err := os.Stat(filepath.Join(out, name)); err != nil || st.Size() == 0 {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestBenchSweepErrors(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		args []string
		msg  string
	}{
		{[]string{"bench", "sweep", "--out", dir}, "-m and --out"},
		{[]string{"bench", "sweep", "-m", "x.gguf", "--out", dir, "--modes", "gpu"}, "unknown mode"},
		{[]string{"bench", "sweep", "-m", "x.gguf", "--out", dir, "--device", "tpu"}, "--device"},
		{[]string{"bench", "sweep", "-m", "x.gguf", "--out", dir, "--gen-len", "0"}, "--gen-len"},
		{[]string{"bench", "roofline", "-m", "x.gguf", "--gpu", "voodoo"}, "matches no profile"},
		{[]string{"bench", "roofline", "-m", "x.gguf", "--format", "xml"}, "--format"},
		{[]string{"bench", "sparsity"}, "--profile"},
		{[]string{"bench", "sparsity", "--profile", "p", "--firing", "2"}, "--firing"},
		{[]string{"bench", "predictor", "--profile", "p"}, "--predictor"},
	}
	for _, c := range cases {
		_, e, code := stoke(t, c.args...)
		if code != 2 || !strings.Contains(e, c.msg) {
			t.Errorf("stoke %q: exit %d, stderr %q; want exit 2 mentioning %q", c.args, code, e, c.msg)
		}
	}
}

func TestBenchReportsCLI(t *testing.T) {
	model, prof := benchModel(t)

	// roofline: every row says it is a model
	out, e, code := stoke(t, "bench", "roofline", "-m", model, "--profile", prof, "--gpu", "1060,4090", "--vram", "25%,100%",
		"--cpu-bandwidth", "20", "--format", "csv")
	if code != 0 {
		t.Fatalf("bench roofline: exit %d: %s", code, e)
	}
	recs, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if err != nil || len(recs) < 4 {
		t.Fatalf("roofline csv: %v\n%s", err, out)
	}
	kind, tps := slices.Index(recs[0], "kind"), slices.Index(recs[0], "predicted_tg_tps")
	gpus := map[string]bool{}
	for _, r := range recs[1:] {
		if r[kind] != bench.RooflineKind {
			t.Errorf("row not labelled a model: %q", r)
		}
		if v, err := strconv.ParseFloat(r[tps], 64); err != nil || !(v > 0) {
			t.Errorf("predicted_tg_tps %q", r[tps])
		}
		gpus[r[1]] = true
	}
	if !gpus["GTX 1060 6GB"] || !gpus["RTX 4090"] || !gpus["none (CPU only)"] || len(gpus) != 3 {
		t.Errorf("gpus %v", gpus)
	}
	out, _, code = stoke(t, "bench", "roofline", "-m", model, "--cpu-bandwidth", "20", "--gpu", "all")
	if code != 0 || !strings.Contains(out, "not a measurement") || !strings.Contains(out, "H100") {
		t.Errorf("roofline md: exit %d\n%s", code, out)
	}

	// sparsity: a table per format
	out, e, code = stoke(t, "bench", "sparsity", "-m", model, "--profile", prof, "--format", "json")
	if code != 0 {
		t.Fatalf("bench sparsity: exit %d: %s", code, e)
	}
	var js struct {
		Rows []map[string]any `json:"rows"`
	}
	if err := json.Unmarshal([]byte(out), &js); err != nil || len(js.Rows) < 2 {
		t.Fatalf("sparsity json: %v\n%s", err, out)
	}
	last := js.Rows[len(js.Rows)-1]
	if last["layer"] != "all" {
		t.Errorf("last row %v", last)
	}
	// planted: about 5% hot neurons firing for most tokens, the rest rarely
	if v, _ := last["fires>50%"].(float64); v < 0.02 || v > 0.1 {
		t.Errorf("share firing on > 50%% of tokens: %v", last["fires>50%"])
	}
	if v, _ := last["top10%_coverage"].(float64); v < 0.5 {
		t.Errorf("top-10%% coverage %v", last["top10%_coverage"])
	}
	out, _, code = stoke(t, "bench", "sparsity", "--profile", prof)
	if code != 0 || !strings.Contains(out, "| layer | tokens |") {
		t.Errorf("sparsity md: exit %d\n%s", code, out)
	}
}

// TestBenchSparse: stoke bench --sparse decodes with the model's own
// predictor (as stored, or re-encoded by --predictor-type) and reports
// the share of FFN neurons computed; --predictor or --predictor-type
// without --sparse, or a type it does not take, is a usage error.
func TestBenchSparse(t *testing.T) {
	model, _ := benchModel(t)
	out, e, code := stoke(t, "bench", "-m", model, "--sparse", "-p", "4", "-n", "8", "-r", "1", "--threads", "1", "--json")
	if code != 0 || !strings.Contains(e, "the file's PowerInfer predictor") {
		t.Fatalf("bench --sparse: exit %d: %s%s", code, out, e)
	}
	var res struct {
		Results []struct {
			Engine        string  `json:"engine"`
			Test          string  `json:"test"`
			TokPerSec     float64 `json:"tokens_per_s"`
			ActivePercent float64 `json:"active_percent"`
		} `json:"results"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if len(res.Results) != 2 {
		t.Fatalf("results %+v, want pp and tg", res.Results)
	}
	for _, r := range res.Results {
		if r.Engine != "stoke-sparse" || !(r.TokPerSec > 0) {
			t.Errorf("result %+v", r)
		}
		if tg := strings.HasPrefix(r.Test, "tg"); tg != (r.ActivePercent > 0 && r.ActivePercent < 50) {
			t.Errorf("%s: %.1f%% of neurons computed (want a planted model's few, for tg only)", r.Test, r.ActivePercent)
		}
	}
	if out, _, code := stoke(t, "bench", "-m", model, "--sparse", "-p", "0", "-n", "4", "-r", "1", "--threads", "1"); code != 0 || !strings.Contains(out, "of FFN neurons computed") {
		t.Errorf("bench --sparse table: exit %d:\n%s", code, out)
	}
	if _, e, code := stoke(t, "bench", "-m", model, "--predictor", model, "-n", "4"); code != 2 || !strings.Contains(e, "--sparse") {
		t.Errorf("--predictor without --sparse: exit %d, %s", code, e)
	}
	// eval-predictor scores the file's own predictor, on the residual
	// stream it reads: the planted model's recall
	text := filepath.Join(t.TempDir(), "text.txt")
	if err := os.WriteFile(text, []byte(strings.Repeat("The fox ran to the river and saw the fish. ", 20)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, e, code = stoke(t, "eval-predictor", "-m", model, "--text", text, "--ctx", "64", "--json")
	var ev struct {
		Recall float64 `json:"recall"`
		Layers []struct {
			Sparsity float64 `json:"sparsity"`
		} `json:"layers"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &ev) != nil || ev.Recall < 0.95 || len(ev.Layers) == 0 || ev.Layers[0].Sparsity < 0.5 {
		t.Errorf("eval-predictor of the file's predictor: exit %d, %+v: %s%s", code, ev, out, e)
	}
	// the file's F16 predictor re-encoded at load
	if out, e, code := stoke(t, "bench", "-m", model, "--sparse", "--predictor-type", "q8_0", "-p", "0", "-n", "4", "-r", "1", "--threads", "1"); code != 0 ||
		!strings.Contains(e, "the file's PowerInfer predictor in Q8_0") || !strings.Contains(out, "of FFN neurons computed") {
		t.Errorf("bench --sparse --predictor-type q8_0: exit %d: %s%s", code, out, e)
	}
	if _, e, code := stoke(t, "bench", "-m", model, "--predictor-type", "q8_0", "-n", "4"); code != 2 || !strings.Contains(e, "--sparse") {
		t.Errorf("--predictor-type without --sparse: exit %d, %s", code, e)
	}
	if _, e, code := stoke(t, "bench", "-m", model, "--sparse", "--predictor-type", "q4_k", "-n", "4"); code != 2 || !strings.Contains(e, "predictor-type") {
		t.Errorf("--predictor-type q4_k: exit %d, %s", code, e)
	}
}
