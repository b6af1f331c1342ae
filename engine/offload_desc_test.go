package engine

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stokehq/stoke/models/dtype"
	"github.com/stokehq/stoke/models/synth"
	"github.com/stokehq/stoke/offload"
)

// TestOffloadDesc checks the planner's description against the file: per
// layer, the tensors it names plus FFN × the gate/up rows add up to the
// file's bytes for that layer (all vectors are F32, so the engine's
// float32 copies are the file's size), the down row is the row the sparse
// FFN reads, and the head matches.
func TestOffloadDesc(t *testing.T) {
	for _, c := range []synth.Config{
		{Arch: "llama", Params: 2e6, Type: dtype.Q8_0, Seed: 1},
		{Arch: "llama", Params: 2e6, Type: dtype.Q4_K, Seed: 2},
		{Arch: "llama", Params: 2e6, Type: dtype.F16, Seed: 3},
		{Arch: "llama", Act: "relu", PowerInfer: true, Params: 2e6, Type: dtype.Q4_0, Seed: 4},
		{Arch: "opt", Params: 2e6, Type: dtype.Q8_0, Seed: 5},
		{Arch: "bamboo", Params: 2e6, Type: dtype.Q5_1, Seed: 6},
	} {
		t.Run(fmt.Sprintf("%s-%v-%s-pi%v", c.Arch, c.Act, c.Type, c.PowerInfer), func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "m.gguf")
			if err := synth.Write(p, c); err != nil {
				t.Fatal(err)
			}
			m, err := Load(p)
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			cfg := &m.Config
			freq := make([][]float64, cfg.Layers)
			freq[0] = make([]float64, cfg.FFN)
			for i := range freq[0] {
				freq[0][i] = float64(i%10) / 10
			}
			d, err := m.OffloadDesc(freq)
			if err != nil {
				t.Fatal(err)
			}
			downT, err := m.neuronMajorDown()
			if err != nil {
				t.Fatal(err)
			}
			if d.Dim != cfg.Dim || d.FFN != cfg.FFN || d.KVDim != cfg.KVDim() || d.QDim != cfg.QDim() || d.Vocab != cfg.Vocab || d.KVType != 4 {
				t.Fatalf("shape: %+v", d)
			}
			fileLayer := map[int]int64{}
			for _, ti := range m.File.Tensors {
				var l int
				var rest string
				if n, _ := fmt.Sscanf(ti.Name, "blk.%d.%s", &l, &rest); n == 2 {
					fileLayer[l] += int64(ti.Size)
				}
			}
			for l := range d.Layers {
				ld, lw := &d.Layers[l], &m.W.Layers[l]
				if got, want := ld.DownRow, int64(downT[l].RowBytes()); got != want {
					t.Errorf("layer %d: DownRow %d, the sparse FFN's row is %d", l, got, want)
				}
				var sum int64
				for _, ts := range [][]offload.Tensor{ld.Attn, ld.FFNFixed, ld.Predictor} {
					for _, tn := range ts {
						if !strings.HasPrefix(tn.Name, fmt.Sprintf("blk.%d.", l)) || tn.Bytes <= 0 {
							t.Errorf("layer %d: tensor %+v", l, tn)
						}
						sum += tn.Bytes
					}
				}
				down := lw.DownT
				if down == nil {
					down = lw.Down
				}
				sum += int64(cfg.FFN)*(ld.GateRow+ld.UpRow) + int64(len(down.Data))
				if ld.GateBias {
					sum += 4 * int64(cfg.FFN)
				}
				if ld.UpBias {
					sum += 4 * int64(cfg.FFN)
				}
				if sum != fileLayer[l] {
					t.Errorf("layer %d: desc accounts %d bytes, file has %d", l, sum, fileLayer[l])
				}
				if (len(ld.Predictor) > 0) != (lw.FC1 != nil) || cfg.Gated != (ld.GateRow > 0) {
					t.Errorf("layer %d: predictor %d tensors, gate row %d", l, len(ld.Predictor), ld.GateRow)
				}
				if (l == 0) != (ld.Freq != nil) {
					t.Errorf("layer %d: Freq %v", l, ld.Freq != nil)
				}
			}
			if d.OutputBytes != int64(len(m.W.Output.Data)) {
				t.Errorf("OutputBytes %d", d.OutputBytes)
			}
			var norm int64
			for _, n := range []string{"output_norm.weight", "output_norm.bias"} {
				if ti, ok := m.File.Tensor(n); ok {
					norm += int64(ti.Size)
				}
			}
			if d.OutNorm != norm {
				t.Errorf("OutNorm %d, file %d", d.OutNorm, norm)
			}
			pl, err := offload.Solve(d, offload.Options{Mode: offload.ModeHybrid, Budget: d.WeightBytes(), Context: 64})
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: %d layers, %s of weights; a plan of that size: %s, hit rate %.2f",
				d.Name, len(d.Layers), offload.FormatBytes(d.WeightBytes()), offload.FormatBytes(pl.TotalBytes), pl.HitRate)
		})
	}
}

func TestOffloadDescErrors(t *testing.T) {
	p := filepath.Join(t.TempDir(), "m.gguf")
	if err := synth.Write(p, synth.Config{Arch: "llama", Params: 2e6, Type: dtype.Q8_0, Seed: 1}); err != nil {
		t.Fatal(err)
	}
	m, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if _, err := m.OffloadDesc(make([][]float64, m.Config.Layers+1)); err == nil {
		t.Error("wrong layer count accepted")
	}
	bad := make([][]float64, m.Config.Layers)
	bad[1] = []float64{1}
	if _, err := m.OffloadDesc(bad); err == nil {
		t.Error("wrong neuron count accepted")
	}
	bad[1] = make([]float64, m.Config.FFN)
	bad[1][3] = 2
	if _, err := m.OffloadDesc(bad); err == nil {
		t.Error("frequency 2 accepted")
	}
}
