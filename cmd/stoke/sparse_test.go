package main

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSparsePipeline runs the sparsity workflow end to end through the CLI
// on a tiny planted ReLU model: profile → train-predictor → eval-predictor
// → run --sparse, and perplexity with calibrated thresholds.
func TestSparsePipeline(t *testing.T) {
	if testing.Short() {
		t.Skip("trains a predictor")
	}
	dir := t.TempDir()
	model := filepath.Join(dir, "relu.gguf")
	if _, e, code := stoke(t, "synth", "--out", model, "--params", "2M", "--dtype", "q8_0", "--relu", "--seed", "3"); code != 0 {
		t.Fatalf("synth: %s", e)
	}
	var text strings.Builder
	for i := range 300 {
		fmt.Fprintf(&text, "Story %d: the little fox ran to the river and saw %d fish. ", i, i*7%13)
	}
	textPath := filepath.Join(dir, "text.txt")
	if err := os.WriteFile(textPath, []byte(text.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	prof := filepath.Join(dir, "prof.gguf")
	if out, e, code := stoke(t, "profile", "-m", model, "--text", textPath, "--out", prof, "--ctx", "128", "--max-tokens", "1800"); code != 0 || !strings.Contains(out, "mean active fraction") {
		t.Fatalf("profile: exit %d: %s%s", code, out, e)
	}
	pred := filepath.Join(dir, "pred.gguf")
	if out, e, code := stoke(t, "train-predictor", "-m", model, "--profile", prof, "--out", pred); code != 0 || !strings.Contains(out, `"Recall"`) || !strings.Contains(e, "layer 2/2: rank ") {
		t.Fatalf("train-predictor: exit %d: %s%s", code, out, e)
	}
	out, e, code := stoke(t, "eval-predictor", "-m", model, "--predictor", pred, "--text", textPath, "--max-tokens", "300", "--ctx", "128", "--json")
	if code != 0 {
		t.Fatalf("eval-predictor: exit %d: %s", code, e)
	}
	var ev struct {
		Recall float64 `json:"recall"`
		Layers []struct {
			Recall         float64 `json:"recall"`
			Precision      float64 `json:"precision"`
			Sparsity       float64 `json:"sparsity"`
			PredictorShare float64 `json:"predictor_share"`
		} `json:"layers"`
	}
	if err := json.Unmarshal([]byte(out), &ev); err != nil {
		t.Fatalf("eval-predictor --json: %v\n%s", err, out)
	}
	t.Logf("eval: %+v", ev)
	if len(ev.Layers) != 2 || ev.Recall < 0.9 || ev.Layers[0].Sparsity < 0.5 || !(ev.Layers[0].PredictorShare > 0) {
		t.Errorf("eval-predictor: %+v", ev)
	}
	// the same predictor re-encoded in Q8_0 at load: about the same recall
	out, e, code = stoke(t, "eval-predictor", "-m", model, "--predictor", pred, "--predictor-type", "q8_0", "--text", textPath, "--max-tokens", "300", "--ctx", "128", "--json")
	if code != 0 {
		t.Fatalf("eval-predictor --predictor-type q8_0: exit %d: %s", code, e)
	}
	var evq struct {
		Recall float64 `json:"recall"`
	}
	if err := json.Unmarshal([]byte(out), &evq); err != nil {
		t.Fatalf("eval-predictor --json: %v\n%s", err, out)
	}
	if math.Abs(evq.Recall-ev.Recall) > 0.02 {
		t.Errorf("recall %.4f in Q8_0, %.4f as trained (F16)", evq.Recall, ev.Recall)
	}
	if out, e, code := stoke(t, "run", "-m", model, "--sparse", "--predictor", pred, "--predictor-type", "q4_0", "-p", "The little fox", "-n", "8", "--temp", "0"); code != 0 || !strings.Contains(e, "in Q4_0") {
		t.Fatalf("run --sparse --predictor-type q4_0: exit %d: %s%s", code, out, e)
	}
	if _, e, code := stoke(t, "run", "-m", model, "--sparse", "--predictor-type", "q8_0", "-p", "x", "-n", "1"); code != 2 || !strings.Contains(e, "no predictor of its own") {
		t.Errorf("--predictor-type without a predictor: exit %d, %s", code, e)
	}
	out, e, code = stoke(t, "run", "-m", model, "--sparse", "--predictor", pred, "-p", "The little fox", "-n", "8", "--temp", "0", "--json")
	if code != 0 || !strings.Contains(e, "sparse FFN with predictor") {
		t.Fatalf("run --sparse: exit %d: %s%s", code, out, e)
	}
	// a Q8_0 predictor: stored so, and run
	predQ := filepath.Join(dir, "pred-q8.gguf")
	if out, e, code := stoke(t, "train-predictor", "-m", model, "--profile", prof, "--out", predQ, "--type", "q8_0"); code != 0 || !strings.Contains(out, `"Recall"`) {
		t.Fatalf("train-predictor --type q8_0: exit %d: %s%s", code, out, e)
	}
	if out, _, code := stoke(t, "inspect", predQ); code != 0 || !strings.Contains(out, "Q8_0") {
		t.Errorf("inspect of the Q8_0 predictor: exit %d:\n%s", code, out)
	}
	if out, e, code := stoke(t, "run", "-m", model, "--sparse", "--predictor", predQ, "-p", "The little fox", "-n", "8", "--temp", "0", "--json"); code != 0 {
		t.Fatalf("run --sparse with the Q8_0 predictor: exit %d: %s%s", code, out, e)
	}
	if _, e, code := stoke(t, "train-predictor", "-m", model, "--profile", prof, "--out", predQ, "--type", "q5_k"); code != 2 || !strings.Contains(e, "--type") {
		t.Errorf("--type q5_k: exit %d, %s", code, e)
	}
	out, e, code = stoke(t, "perplexity", "-m", model, "--text", textPath, "--ctx", "128", "--chunks", "2", "--profile", prof, "--sparsity", "0.5", "--json")
	if code != 0 || !strings.Contains(out, `"ppl"`) {
		t.Fatalf("perplexity --sparsity: exit %d: %s%s", code, out, e)
	}
	if _, e, code := stoke(t, "perplexity", "-m", model, "--text", textPath, "--sparsity", "0.5"); code != 2 || !strings.Contains(e, "--profile") {
		t.Errorf("--sparsity without --profile: exit %d, %s", code, e)
	}
}
