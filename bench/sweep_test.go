package bench_test

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/stokehq/stoke/bench"
	"github.com/stokehq/stoke/engine"
	"github.com/stokehq/stoke/models/dtype"
	"github.com/stokehq/stoke/models/synth"
	"github.com/stokehq/stoke/predictor"
)

func TestParseBudgets(t *testing.T) {
	const model = 1000
	got, err := bench.ParseBudgets("0, 10%,2KiB,1.5GiB,3MB,50%, 100, 0.5%,1G", model)
	if err != nil {
		t.Fatal(err)
	}
	want := []int64{0, 100, 2048, 3 << 29, 3e6, 500, 5, 1 << 30} // "100" repeats 10% and is dropped
	var bytes []int64
	for _, b := range got {
		bytes = append(bytes, b.Bytes)
	}
	if !slices.Equal(bytes, want) {
		t.Fatalf("budgets %v, want %v", bytes, want)
	}
	if got[1].Label != "10%" {
		t.Errorf("label %q", got[1].Label)
	}
	for _, bad := range []string{"", "x", "-1", "5XB", "1e30", "NaN", "%", ","} {
		if _, err := bench.ParseBudgets(bad, model); err == nil {
			t.Errorf("ParseBudgets(%q) accepted", bad)
		}
	}
	if _, err := bench.ParseBudgets("10%", 0); err == nil {
		t.Error("a share without a model size accepted")
	}
}

func TestParseModes(t *testing.T) {
	m, err := bench.ParseModes("cpu, hybrid,layer-split,dense")
	if err != nil || len(m) != 4 || m[1] != bench.ModeHybrid {
		t.Fatalf("%v, %v", m, err)
	}
	for _, bad := range []string{"", "gpu", "cpu,,nope"} {
		if _, err := bench.ParseModes(bad); err == nil {
			t.Errorf("ParseModes(%q) accepted", bad)
		}
	}
}

func TestTableFormats(t *testing.T) {
	tb := &bench.Table{Title: "T", Note: "a note", Columns: []string{"a", "b|c", "d"},
		Rows: [][]any{{1, 0.25, "x"}, {"all", 1.5e-7, nil}}}
	var md, cs, js bytes.Buffer
	for f, w := range map[string]*bytes.Buffer{"md": &md, "csv": &cs, "json": &js} {
		if err := tb.Write(w, f); err != nil {
			t.Fatal(f, err)
		}
	}
	if !strings.Contains(md.String(), "### T\n\na note\n\n| a | b\\|c | d |") || !strings.Contains(md.String(), `| 1 | 0.25 | x |`) {
		t.Errorf("markdown:\n%s", md.String())
	}
	recs, err := csv.NewReader(&cs).ReadAll()
	if err != nil || len(recs) != 3 || recs[0][1] != "b|c" || recs[2][1] != "1.5e-07" {
		t.Errorf("csv %q, %v", recs, err)
	}
	var obj struct {
		Title string           `json:"title"`
		Note  string           `json:"note"`
		Rows  []map[string]any `json:"rows"`
	}
	if err := json.Unmarshal(js.Bytes(), &obj); err != nil || obj.Note != "a note" || len(obj.Rows) != 2 || obj.Rows[0]["b|c"] != 0.25 {
		t.Errorf("json %+v, %v", obj, err)
	}
	if err := tb.Write(io.Discard, "xml"); err == nil {
		t.Error("unknown format accepted")
	}
}

// testProfile records a profile over two layers of ten neurons where
// neuron i of layer l fires on tokens t with t mod (i+1) == 0.
func testProfile(tokens int) *predictor.Profile {
	p := predictor.NewProfile(2, 4, 10, 64, 1)
	x := []float32{1, 2, 3, 4}
	a := make([]float32, 10)
	for tok := range tokens {
		for l := range 2 {
			for i := range a {
				a[i] = 0
				if tok%(i+1) == 0 {
					a[i] = 1
				}
			}
			p.Record(l, x, a)
		}
	}
	return p
}

func TestSparsityTable(t *testing.T) {
	p := testProfile(100)
	tb, err := bench.SparsityTable(p, []float64{0.5, 0.3}, []float64{0.1, 0.5, 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(tb.Rows) != 3 || len(tb.Columns) != 10 {
		t.Fatalf("table %v rows of %v", len(tb.Rows), tb.Columns)
	}
	row := tb.Rows[0]
	// rates: 1, .5, .34, .25, .2, .17, .15, .13, .12, .1 → mean ≈ .296
	if v := row[3].(float64); v < 0.29 || v > 0.30 {
		t.Errorf("mean active %v", v)
	}
	if row[5].(float64) != 0.1 || row[6].(float64) != 0.3 { // > 50%: one neuron; > 30%: three
		t.Errorf("firing shares %v %v", row[5], row[6])
	}
	if c := row[7].(float64); c < 0.33 || c > 0.35 { // top 10% = the always-on neuron: 1/2.96
		t.Errorf("top-10%% coverage %v", c)
	}
	if row[9].(float64) != 1 {
		t.Errorf("full coverage %v", row[9])
	}
	if tb.Rows[2][0] != "all" {
		t.Errorf("last row %v", tb.Rows[2])
	}
}

func TestPredictorTable(t *testing.T) {
	p := testProfile(50)
	// a predictor that says "neuron 0 only": fc1 = x·1, fc2 row 0 positive
	var pr predictor.Predictor
	for range 2 {
		lp := predictor.LayerPredictor{Dim: 4, Rank: 1, FFN: 10, FC1: []float32{1, 1, 1, 1}, FC2: make([]float32, 10)}
		lp.FC2[0] = 1
		for i := 1; i < 10; i++ {
			lp.FC2[i] = -1
		}
		pr.Layers = append(pr.Layers, lp)
	}
	tb, err := bench.PredictorTable(p, &pr, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(tb.Rows) != 3 || tb.Rows[0][4].(float64) != 1 { // precision 1: neuron 0 always fires
		t.Fatalf("rows %v", tb.Rows)
	}
	if r := tb.Rows[0][3].(float64); r >= 1 || r <= 0 {
		t.Errorf("recall %v", r)
	}
	pr.Layers = pr.Layers[:1]
	if _, err := bench.PredictorTable(p, &pr, nil); err == nil {
		t.Error("layer mismatch accepted")
	}
}

// csvKinds are the typed columns of sweep.csv.
var csvKinds = map[string]string{
	"vram_budget_bytes": "int", "plan_bytes": "int", "device_weight_bytes": "int", "host_weight_bytes": "int",
	"device_layers": "int", "hot_neurons": "int", "pp_tokens": "int", "tg_tokens": "int", "threads": "int",
	"repeat": "int", "ngl": "int",
	"vram_share_of_model": "float", "hot_share": "float", "plan_hit_rate": "float", "hit_rate": "float",
	"device_ffn_bytes_per_token": "float", "est_device_bytes_per_token": "float", "est_cpu_bytes_per_token": "float",
	"pp_tps_median": "float", "pp_tps_stddev": "float", "pp_tps_min": "float", "pp_tps_max": "float",
	"tg_tps_median": "float", "tg_tps_stddev": "float", "tg_tps_min": "float", "tg_tps_max": "float",
	"roofline_tg_tps": "float", "cpu_read_gbs": "float", "device_read_gbs": "float",
}

// CheckSweepFiles checks the files a sweep wrote in dir: the CSV header
// and typed cells, the JSON fields, a PNG and an SVG. It returns the
// CSV records as maps.
func checkSweepFiles(t *testing.T, dir string) []map[string]string {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, "sweep.csv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) < 2 || !slices.Equal(recs[0], bench.CSVColumns) {
		t.Fatalf("csv header %q", recs[0])
	}
	for _, c := range []string{"mode", "vram_budget_bytes", "tg_tps_median", "tg_tps_stddev", "hit_rate",
		"device_weight_bytes", "host_weight_bytes", "model_sha256", "stoke_version", "cpu", "cpu_read_gbs"} {
		if !slices.Contains(recs[0], c) {
			t.Errorf("csv lacks column %q", c)
		}
	}
	var rows []map[string]string
	for _, rec := range recs[1:] {
		m := map[string]string{}
		for i, c := range recs[0] {
			m[c] = rec[i]
			if rec[i] == "" {
				continue
			}
			switch csvKinds[c] {
			case "int":
				if _, err := strconv.ParseInt(rec[i], 10, 64); err != nil {
					t.Errorf("csv %s = %q is not an integer", c, rec[i])
				}
			case "float":
				if _, err := strconv.ParseFloat(rec[i], 64); err != nil {
					t.Errorf("csv %s = %q is not a number", c, rec[i])
				}
			}
		}
		if m["status"] == "ok" && m["mode"] != "llama.cpp" {
			if v, _ := strconv.ParseFloat(m["tg_tps_median"], 64); !(v > 0) {
				t.Errorf("ok row %v has no decode speed", m)
			}
		}
		rows = append(rows, m)
	}

	b, err := os.ReadFile(filepath.Join(dir, "sweep.json"))
	if err != nil {
		t.Fatal(err)
	}
	var js map[string]any
	if err := json.Unmarshal(b, &js); err != nil {
		t.Fatal(err)
	}
	if js["schema"] != bench.SweepSchema {
		t.Errorf("json schema %v", js["schema"])
	}
	prov, _ := js["provenance"].(map[string]any)
	model, _ := prov["model"].(map[string]any)
	machine, _ := prov["machine"].(map[string]any)
	for _, k := range []string{"stoke_version", "go_version", "time", "command"} {
		if _, ok := prov[k]; !ok {
			t.Errorf("json provenance lacks %q", k)
		}
	}
	if s, _ := model["sha256"].(string); len(s) != 64 {
		t.Errorf("json model sha256 %q", s)
	}
	for _, k := range []string{"path", "dtype", "params", "weight_bytes"} {
		if _, ok := model[k]; !ok {
			t.Errorf("json model lacks %q", k)
		}
	}
	if c, _ := machine["cores"].(float64); c < 1 {
		t.Errorf("json machine cores %v", machine["cores"])
	}
	for _, k := range []string{"cpu", "ram_bytes", "cpu_read_bandwidth", "device", "device_read_bandwidth"} {
		if _, ok := machine[k]; !ok {
			t.Errorf("json machine lacks %q", k)
		}
	}
	jrows, _ := js["rows"].([]any)
	if len(jrows) == 0 {
		t.Fatal("json has no rows")
	}
	for _, r := range jrows {
		row := r.(map[string]any)
		for _, k := range []string{"mode", "device", "vram_budget_bytes", "status", "hit_rate", "roofline_tg_tps"} {
			if _, ok := row[k]; !ok {
				t.Errorf("json row lacks %q: %v", k, row)
			}
		}
		if _, ok := row["vram_budget_bytes"].(float64); !ok {
			t.Errorf("json vram_budget_bytes is %T", row["vram_budget_bytes"])
		}
		if row["status"] == "ok" {
			tg, _ := row["tg"].(map[string]any)
			if v, _ := tg["tokens_per_s"].(float64); !(v > 0) {
				t.Errorf("json ok row without tg speed: %v", row)
			}
		}
	}

	png, err := os.ReadFile(filepath.Join(dir, "sweep.png"))
	if err != nil || len(png) < 1000 || !bytes.HasPrefix(png, []byte("\x89PNG\r\n\x1a\n")) {
		t.Errorf("sweep.png: %d bytes, %v", len(png), err)
	}
	svg, err := os.ReadFile(filepath.Join(dir, "sweep.svg"))
	if err != nil {
		t.Fatal(err)
	}
	d := xml.NewDecoder(bytes.NewReader(svg))
	root := ""
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("sweep.svg is not XML: %v", err)
		}
		if se, ok := tok.(xml.StartElement); ok && root == "" {
			root = se.Name.Local
		}
	}
	if root != "svg" {
		t.Errorf("sweep.svg root element %q", root)
	}
	return rows
}

// TestSweep runs a small sweep on a tiny planted ReLU model in
// PowerInfer's layout (so the sparse modes have a predictor) with the
// capped CPU standing in for the device, and checks the files.
func TestSweep(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "m.gguf")
	if err := synth.Write(p, synth.Config{Arch: "llama", Act: "relu", PowerInfer: true, Params: 2e6, Type: dtype.Q8_0, Seed: 1}); err != nil {
		t.Fatal(err)
	}
	m, err := engine.Load(p)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	desc, err := m.OffloadDesc(nil)
	if err != nil {
		t.Fatal(err)
	}
	points, err := bench.ParseBudgets("0,50%,150%", desc.WeightBytes())
	if err != nil {
		t.Fatal(err)
	}
	pred, err := m.FilePredictor()
	if err != nil || pred == nil {
		t.Fatalf("predictor %v, %v", pred, err)
	}
	const bw = 10e9
	o := bench.SweepOptions{
		Options:  bench.Options{Threads: 1, PromptLen: 4, GenLen: 4, Repeat: 2},
		Points:   points,
		Modes:    bench.Modes(),
		Device:   bench.CPUCapped(bw),
		Sparsity: &engine.Sparsity{Predictor: pred, OnResidual: true}, CPUBandwidth: bw,
	}
	calls := 0
	o.Progress = func(done, total int, r *bench.Row) {
		calls++
		if done != calls || total != 2+2*len(points) {
			t.Errorf("progress %d/%d after %d calls", done, total, calls)
		}
	}
	rows, err := bench.Sweep(t.Context(), m, desc, o)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2+2*len(points) || calls != len(rows) {
		t.Fatalf("%d rows, %d progress calls", len(rows), calls)
	}
	byKey := map[string]bench.Row{}
	for _, r := range rows {
		byKey[string(r.Mode)+"@"+r.Point] = r
	}
	// at 0 bytes the planner refuses or falls back to the empty plan
	if r := byKey["hybrid@0"]; r.Status == "no-plan" && r.Note == "" || r.Status == "ok" && (r.PlanBytes != 0 || r.HitRate != 0) || r.Status == "error" {
		t.Errorf("hybrid at 0 bytes: %+v", r)
	}
	full := byKey["hybrid@150%"]
	if full.Status != "ok" || full.HitRate != 1 || full.Sparse != "predictor" || full.TG == nil || len(full.TG.Samples) != 2 {
		t.Errorf("hybrid with room for everything: %+v", full)
	}
	if full.PlanBytes > full.BudgetBytes || full.DeviceWeightBytes == 0 || full.RooflineTPS <= 0 {
		t.Errorf("hybrid plan columns: %+v", full)
	}
	if r := byKey["dense@n/a (host only)"]; r.Status != "ok" || r.Sparse != "dense" || r.PP == nil || r.TG == nil {
		t.Errorf("dense: %+v", r)
	}
	if r := byKey["layer-split@150%"]; r.Status != "ok" || r.Sparse != "dense" || r.DeviceLayers != len(desc.Layers) {
		t.Errorf("layer-split: %+v", r)
	}

	// interleaved: Repeat rounds of one run each, merged into one row per point
	o.Modes, o.Interleave, o.Progress = []bench.Mode{bench.ModeDense, bench.ModeHybrid}, true, nil
	o.Points = points[2:]
	n := 0
	o.Progress = func(done, total int, r *bench.Row) {
		n++
		if done != n || total != 4 {
			t.Errorf("interleaved progress %d/%d after %d calls", done, total, n)
		}
	}
	irows, err := bench.Sweep(t.Context(), m, desc, o)
	if err != nil {
		t.Fatal(err)
	}
	if len(irows) != 2 || n != 4 {
		t.Fatalf("interleaved: %d rows, %d calls", len(irows), n)
	}
	for _, r := range irows {
		if r.Status != "ok" || r.TG == nil || len(r.TG.Samples) != 2 || len(r.PP.Samples) != 2 || !(r.TG.TokPerSec > 0) {
			t.Errorf("interleaved row %+v", r)
		}
	}
	if irows[1].HitRate != 1 {
		t.Errorf("interleaved hybrid hit rate %v", irows[1].HitRate)
	}

	rep := &bench.SweepReport{Schema: bench.SweepSchema, Provenance: bench.NewProvenance([]string{"test"}), Rows: rows,
		Settings: bench.Settings{Threads: 1, PromptLen: 4, GenLen: 4, Repeat: 2, Modes: o.Modes, Points: points}}
	if rep.Provenance.Model, err = bench.DescribeModel(m); err != nil {
		t.Fatal(err)
	}
	rep.Provenance.Machine = bench.DescribeMachine()
	rep.Provenance.Machine.CPUBandwidth = bw
	rep.Provenance.Machine.Device, rep.Provenance.Machine.DeviceKind = o.Device.Label, o.Device.Kind
	rep.LlamaBench = []bench.LlamaPoint{{Point: "50%", BudgetBytes: points[1].Bytes, NGL: 1,
		TG: &bench.Result{Test: "tg4", Tokens: 4, TokPerSec: 100, Samples: []float64{99, 101}}}}
	out := filepath.Join(dir, "out")
	paths, err := rep.WriteFiles(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) != 4 {
		t.Errorf("wrote %v", paths)
	}
	recs := checkSweepFiles(t, out)
	if len(recs) != len(rows)+1 || recs[len(recs)-1]["mode"] != "llama.cpp" || recs[len(recs)-1]["ngl"] != "1" {
		t.Errorf("csv rows: %d, last %v", len(recs), recs[len(recs)-1])
	}
}
