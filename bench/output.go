package bench

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// SweepSchema names the JSON and CSV layout; it changes when a field's
// meaning does.
const SweepSchema = "stoke.bench.sweep/v1"

// SweepReport is a sweep with everything needed to reproduce and judge
// it. It is what sweep.json holds.
type SweepReport struct {
	Schema     string       `json:"schema"`
	Note       string       `json:"note"` // what the device is, in words
	Provenance Provenance   `json:"provenance"`
	Settings   Settings     `json:"settings"`
	Rows       []Row        `json:"rows"`
	LlamaBench []LlamaPoint `json:"llama_bench"` // empty without --llama-bench
	LlamaNote  string       `json:"llama_bench_note"`
}

// Settings are the sweep's options as run.
type Settings struct {
	Threads   int `json:"threads"`
	PromptLen int `json:"prompt_len"`
	GenLen    int `json:"gen_len"`
	Batch     int `json:"batch"`
	Repeat    int `json:"repeat"`
	// Interleave: the repeats ran in rounds over every mode and point,
	// each with its own warm-up (SweepOptions.Interleave).
	Interleave bool     `json:"interleave"`
	Modes      []Mode   `json:"modes"`
	Points     []Budget `json:"vram_points"`
	Context    int      `json:"context"`
	// ShareBase is what 100% of the model means to a VRAM point: the
	// bytes of every weight a plan could place (offload.Desc.WeightBytes).
	ShareBase int64 `json:"share_base_bytes"`
}

// LlamaPoint is llama-bench at one VRAM point: -ngl is the number of
// layers a layer-split plan fits in the budget.
type LlamaPoint struct {
	Point       string  `json:"vram_point"`
	BudgetBytes int64   `json:"vram_budget_bytes"`
	NGL         int     `json:"ngl"`
	PP          *Result `json:"pp,omitempty"`
	TG          *Result `json:"tg,omitempty"`
	Note        string  `json:"note,omitempty"`
}

// CSVColumns is the header of sweep.csv, one row per Row (and per
// llama-bench point, mode "llama.cpp"). Provenance columns repeat on
// every row so that a row read alone still says where it came from.
var CSVColumns = []string{
	"mode", "device", "vram_point", "vram_budget_bytes", "vram_share_of_model", "status", "sparse",
	"plan_bytes", "device_weight_bytes", "host_weight_bytes", "device_layers", "hot_neurons", "hot_share",
	"plan_hit_rate", "hit_rate", "device_ffn_bytes_per_token", "est_device_bytes_per_token", "est_cpu_bytes_per_token",
	"pp_tokens", "pp_tps_median", "pp_tps_stddev", "pp_tps_min", "pp_tps_max",
	"tg_tokens", "tg_tps_median", "tg_tps_stddev", "tg_tps_min", "tg_tps_max", "tg_tps_samples",
	"roofline_tg_tps", "threads", "repeat", "ngl",
	"stoke_version", "model_sha256", "model_dtype", "cpu", "cpu_read_gbs", "device_read_gbs", "note",
}

// WriteJSON writes the report, indented.
func (r *SweepReport) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteCSV writes the rows under CSVColumns.
func (r *SweepReport) WriteCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(CSVColumns); err != nil {
		return err
	}
	pv := &r.Provenance
	common := func(rec map[string]string) {
		rec["stoke_version"] = pv.Stoke
		rec["model_sha256"] = pv.Model.SHA256
		rec["model_dtype"] = pv.Model.DType
		rec["cpu"] = pv.Machine.CPU
		rec["cpu_read_gbs"] = f64(pv.Machine.CPUBandwidth / 1e9)
		rec["device_read_gbs"] = f64(pv.Machine.DeviceBandwidth / 1e9)
		rec["threads"] = strconv.Itoa(r.Settings.Threads)
		rec["repeat"] = strconv.Itoa(r.Settings.Repeat)
	}
	result := func(rec map[string]string, prefix string, res *Result) {
		if res == nil {
			return
		}
		lo, hi := minMax(res.Samples)
		rec[prefix+"_tokens"] = strconv.Itoa(res.Tokens)
		rec[prefix+"_tps_median"] = f64(res.TokPerSec)
		rec[prefix+"_tps_stddev"] = f64(res.StdDev)
		rec[prefix+"_tps_min"] = f64(lo)
		rec[prefix+"_tps_max"] = f64(hi)
		if prefix == "tg" {
			var s []string
			for _, v := range res.Samples {
				s = append(s, f64(v))
			}
			rec["tg_tps_samples"] = strings.Join(s, ";")
		}
	}
	emit := func(rec map[string]string) error {
		out := make([]string, len(CSVColumns))
		for i, c := range CSVColumns {
			out[i] = rec[c]
		}
		return cw.Write(out)
	}
	for i := range r.Rows {
		x := &r.Rows[i]
		rec := map[string]string{
			"mode": string(x.Mode), "device": x.Device, "vram_point": x.Point,
			"vram_budget_bytes": i64(x.BudgetBytes), "vram_share_of_model": f64(x.BudgetShare),
			"status": x.Status, "sparse": x.Sparse,
			"plan_bytes": i64(x.PlanBytes), "device_weight_bytes": i64(x.DeviceWeightBytes),
			"host_weight_bytes": i64(x.HostWeightBytes), "device_layers": strconv.Itoa(x.DeviceLayers),
			"hot_neurons": i64(x.HotNeurons), "hot_share": f64(x.HotShare),
			"plan_hit_rate": f64(x.PlanHitRate), "hit_rate": f64(x.HitRate),
			"device_ffn_bytes_per_token": f64(x.DeviceFFNBytesPerToken),
			"est_device_bytes_per_token": f64(x.EstDeviceBytesPerToken),
			"est_cpu_bytes_per_token":    f64(x.EstCPUBytesPerToken),
			"roofline_tg_tps":            f64(x.RooflineTPS), "ngl": "",
			"note": strings.TrimSpace(x.Note + " " + x.RooflineNote),
		}
		common(rec)
		result(rec, "pp", x.PP)
		result(rec, "tg", x.TG)
		if err := emit(rec); err != nil {
			return err
		}
	}
	for i := range r.LlamaBench {
		x := &r.LlamaBench[i]
		status := "ok"
		if x.TG == nil && x.PP == nil {
			status = "error"
		}
		rec := map[string]string{
			"mode": "llama.cpp", "device": "llama-bench", "vram_point": x.Point,
			"vram_budget_bytes": i64(x.BudgetBytes), "status": status, "sparse": "dense",
			"ngl": strconv.Itoa(x.NGL), "note": x.Note,
		}
		common(rec)
		result(rec, "pp", x.PP)
		result(rec, "tg", x.TG)
		if err := emit(rec); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// WriteFiles writes sweep.json, sweep.csv, sweep.png and sweep.svg into
// dir (created if needed) and returns their paths.
func (r *SweepReport) WriteFiles(dir string) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var paths []string
	write := func(name string, f func(io.Writer) error) error {
		p := filepath.Join(dir, name)
		fh, err := os.Create(p)
		if err != nil {
			return err
		}
		if err := f(fh); err != nil {
			fh.Close()
			return fmt.Errorf("bench: writing %s: %w", p, err)
		}
		if err := fh.Close(); err != nil {
			return err
		}
		paths = append(paths, p)
		return nil
	}
	if err := write("sweep.json", r.WriteJSON); err != nil {
		return paths, err
	}
	if err := write("sweep.csv", r.WriteCSV); err != nil {
		return paths, err
	}
	for _, ext := range []string{"png", "svg"} {
		p := filepath.Join(dir, "sweep."+ext)
		if err := r.Plot(p); err != nil {
			return paths, err
		}
		paths = append(paths, p)
	}
	return paths, nil
}

func f64(v float64) string { return strconv.FormatFloat(v, 'g', 6, 64) }
func i64(v int64) string   { return strconv.FormatInt(v, 10) }

func minMax(x []float64) (lo, hi float64) {
	for i, v := range x {
		if i == 0 || v < lo {
			lo = v
		}
		if i == 0 || v > hi {
			hi = v
		}
	}
	return lo, hi
}
