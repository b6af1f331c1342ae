package bench_test

import (
	"path/filepath"
	"testing"

	"github.com/stokehq/stoke/bench"
	"github.com/stokehq/stoke/engine"
	"github.com/stokehq/stoke/models/dtype"
	"github.com/stokehq/stoke/models/synth"
)

func TestThroughput(t *testing.T) {
	p := filepath.Join(t.TempDir(), "m.gguf")
	if err := synth.Write(p, synth.Config{Arch: "llama", Params: 2e6, Type: dtype.Q8_0, Seed: 1}); err != nil {
		t.Fatal(err)
	}
	m, err := engine.Load(p)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	res, err := bench.Throughput(m, bench.Options{Threads: 1, PromptLen: 16, GenLen: 8, Repeat: 2})
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 2 || res[0].Test != "pp16" || res[1].Test != "tg8" || len(res[1].Samples) != 2 {
		t.Fatalf("results %+v", res)
	}
	for _, r := range res {
		if !(r.TokPerSec > 0) {
			t.Errorf("%s: %g tok/s", r.Test, r.TokPerSec)
		}
	}
}

func TestParseLlamaBenchJSON(t *testing.T) {
	// the shape llama-bench -o json prints (fields trimmed)
	out := []byte(`[
 {"build_commit": "abc", "model_type": "llama 1B Q4_0", "n_prompt": 128, "n_gen": 0, "n_threads": 2, "avg_ts": 100.5, "stddev_ts": 1.5, "samples_ts": [99.0, 100.0, 102.0]},
 {"build_commit": "abc", "n_prompt": 0, "n_gen": 64, "n_threads": 2, "avg_ts": 20.25, "stddev_ts": 0.1, "samples_ts": [20.2, 20.3]}
]`)
	res, err := bench.ParseLlamaBenchJSON(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 2 || res[0].Test != "pp128" || res[0].TokPerSec != 100 || res[1].Test != "tg64" || res[1].TokPerSec != 20.25 {
		t.Fatalf("parsed %+v", res)
	}
	if _, err := bench.ParseLlamaBenchJSON([]byte(`{"oops": 1}`)); err == nil {
		t.Error("garbage accepted")
	}
	if _, err := bench.ParseLlamaBenchJSON([]byte(`[]`)); err == nil {
		t.Error("empty result accepted")
	}
}

func TestBuildLlamaBenchNeedsSource(t *testing.T) {
	if _, err := bench.BuildLlamaBench(t.Context(), t.TempDir(), nil); err == nil {
		t.Fatal("an empty directory was accepted as llama.cpp source")
	}
}
