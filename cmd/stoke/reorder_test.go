package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stokehq/stoke/engine"
)

// TestReorder runs stoke reorder on a planted ReLU model in PowerInfer's
// layout after profiling it: the renumbered model (and its embedded
// predictor) generates what the original does, dense and sparse; the
// renumbered profile is written; the report says how much of the firing
// the first neurons now hold; bad flags are refused; a quantized
// standard-layout model gets a neuron-major down.
func TestReorder(t *testing.T) {
	dir := t.TempDir()
	model := filepath.Join(dir, "relu.gguf")
	if _, e, code := stoke(t, "synth", "--out", model, "--params", "2M", "--dtype", "q4_0", "--relu", "--powerinfer", "--seed", "3"); code != 0 {
		t.Fatalf("synth: %s", e)
	}
	var text strings.Builder
	for i := range 100 {
		fmt.Fprintf(&text, "Story %d: the little fox ran to the river and saw %d fish. ", i, i*7%13)
	}
	textPath := filepath.Join(dir, "text.txt")
	if err := os.WriteFile(textPath, []byte(text.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	prof := filepath.Join(dir, "prof.gguf")
	if out, e, code := stoke(t, "profile", "-m", model, "--text", textPath, "--out", prof, "--ctx", "128", "--max-tokens", "400"); code != 0 {
		t.Fatalf("profile: exit %d: %s%s", code, out, e)
	}
	hot := filepath.Join(dir, "hot.gguf")
	profHot := filepath.Join(dir, "prof-hot.gguf")
	out, e, code := stoke(t, "reorder", "-m", model, "--profile", prof, "--out", hot, "--profile-out", profHot)
	if code != 0 || !strings.Contains(out, "first 10% of neurons") {
		t.Fatalf("reorder: exit %d: %s%s", code, out, e)
	}
	t.Log(out)
	// the planted model fires 5% of its neurons for most tokens: the first
	// 10% hold most of the firing
	var s5, s10, s25 float64
	if _, err := fmt.Sscanf(out[strings.Index(out, "first 5%"):], "first 5%% of neurons: %f%% of firings; first 10%% of neurons: %f%% of firings; first 25%% of neurons: %f%%", &s5, &s10, &s25); err != nil {
		t.Fatalf("report %q: %v", out, err)
	}
	if !(s5 < s10 && s10 < s25 && s10 > 50) {
		t.Errorf("shares %.1f, %.1f, %.1f%%: want increasing, over half in the first 10%%", s5, s10, s25)
	}
	if out, _, code := stoke(t, "inspect", hot); code != 0 || !strings.Contains(out, "stoke.ffn.neuron_order") {
		t.Errorf("inspect of the renumbered model: exit %d, no neuron_order key:\n%s", code, out)
	}
	if _, err := os.Stat(profHot); err != nil {
		t.Errorf("renumbered profile: %v", err)
	}
	gen := func(m string, extra ...string) string {
		t.Helper()
		args := append([]string{"run", "-m", m, "-p", "The little fox", "-n", "24", "--temp", "0"}, extra...)
		out, e, code := stoke(t, args...)
		if code != 0 {
			t.Fatalf("run %v: exit %d: %s", extra, code, e)
		}
		// the text, and the share of neurons the sparse FFN computed,
		// without the speed line between them
		text, rest, _ := strings.Cut(out, " prompt tokens: ")
		_, share, _ := strings.Cut(rest, "sparse FFN:")
		return text + share
	}
	if a, b := gen(model), gen(hot); a != b {
		t.Errorf("dense: renumbered generates %q, original %q", b, a)
	}
	if a, b := gen(model, "--sparse"), gen(hot, "--sparse"); a != b {
		t.Errorf("sparse: renumbered generates %q, original %q", b, a)
	}
	// a sidecar predictor (here the file's own, written out) is renumbered
	// with the model and predicts the same neurons, renumbered
	m, err := engine.Load(model)
	if err != nil {
		t.Fatal(err)
	}
	fp, err := m.FilePredictor() // its weights are the model's bytes: write before Close
	if err != nil || fp == nil {
		t.Fatalf("file predictor: %v", err)
	}
	side, sideHot := filepath.Join(dir, "pred.gguf"), filepath.Join(dir, "pred-hot.gguf")
	err = fp.WriteGGUF(side, nil)
	m.Close()
	if err != nil {
		t.Fatal(err)
	}
	hot2 := filepath.Join(dir, "hot2.gguf")
	if out, e, code := stoke(t, "reorder", "-m", model, "--profile", prof, "--out", hot2, "--predictor", side, "--predictor-out", sideHot); code != 0 {
		t.Fatalf("reorder --predictor: exit %d: %s%s", code, out, e)
	}
	if a, b := gen(model, "--sparse", "--predictor", side), gen(hot2, "--sparse", "--predictor", sideHot); a != b {
		t.Errorf("sidecar predictor: renumbered generates %q, original %q", b, a)
	}
	// a predictor meets only the numbering it predicts for
	if _, e, code := stoke(t, "run", "-m", hot2, "--sparse", "--predictor", side, "-p", "x", "-n", "1"); code != 1 || !strings.Contains(e, "stoke reorder --predictor") {
		t.Errorf("renumbered model, original predictor: exit %d, %s", code, e)
	}
	if _, e, code := stoke(t, "run", "-m", model, "--sparse", "--predictor", sideHot, "-p", "x", "-n", "1"); code != 1 || !strings.Contains(e, "another numbering") {
		t.Errorf("original model, renumbered predictor: exit %d, %s", code, e)
	}
	if _, e, code := stoke(t, "reorder", "-m", model, "--profile", prof, "--out", filepath.Join(dir, "z.gguf"), "--predictor", sideHot, "--predictor-out", filepath.Join(dir, "z-pred.gguf")); code != 1 || !strings.Contains(e, "another numbering") {
		t.Errorf("reorder with a predictor of another numbering: exit %d, %s", code, e)
	}
	// a predictor trained on the renumbered model predicts for its numbering
	trained := filepath.Join(dir, "trained-hot.gguf")
	if out, e, code := stoke(t, "train-predictor", "-m", hot2, "--profile", profHot, "--out", trained); code != 0 {
		t.Fatalf("train-predictor on the renumbered model: exit %d: %s%s", code, out, e)
	}
	if _, e, code := stoke(t, "run", "-m", hot2, "--sparse", "--predictor", trained, "-p", "x", "-n", "1"); code != 0 {
		t.Errorf("renumbered model, predictor trained on it: exit %d, %s", code, e)
	}
	if _, e, code := stoke(t, "run", "-m", model, "--sparse", "--predictor", trained, "-p", "x", "-n", "1"); code != 1 || !strings.Contains(e, "another numbering") {
		t.Errorf("original model, predictor trained on the renumbered one: exit %d, %s", code, e)
	}
	// renumbering a renumbered model gives a numbering of its own
	hot3 := filepath.Join(dir, "hot3.gguf")
	if _, e, code := stoke(t, "reorder", "-m", hot2, "--profile", profHot, "--out", hot3); code != 0 {
		t.Fatalf("reorder of a renumbered model: %s", e)
	}
	if _, e, code := stoke(t, "run", "-m", hot3, "--sparse", "--predictor", sideHot, "-p", "x", "-n", "1"); code != 1 || !strings.Contains(e, "another numbering") {
		t.Errorf("twice-renumbered model, once-renumbered predictor: exit %d, %s", code, e)
	}
	// refusals
	if _, e, code := stoke(t, "reorder", "-m", model, "--profile", prof); code != 2 || !strings.Contains(e, "--out") {
		t.Errorf("no --out: exit %d, %s", code, e)
	}
	if _, e, code := stoke(t, "reorder", "-m", model, "--profile", prof, "--out", hot, "--predictor", prof); code != 2 || !strings.Contains(e, "--predictor-out") {
		t.Errorf("--predictor alone: exit %d, %s", code, e)
	}
	if _, e, code := stoke(t, "reorder", "-m", model, "--profile", prof, "--out", model); code != 2 || !strings.Contains(e, "elsewhere") {
		t.Errorf("--out the model: exit %d, %s", code, e)
	}
	other := filepath.Join(dir, "other.gguf") // another shape: the profile does not fit it
	if _, e, code := stoke(t, "synth", "--out", other, "--params", "3M", "--dtype", "q4_0", "--relu", "--powerinfer", "--seed", "3"); code != 0 {
		t.Fatalf("synth: %s", e)
	}
	if _, e, code := stoke(t, "reorder", "-m", other, "--profile", prof, "--out", filepath.Join(dir, "y.gguf")); code != 1 || !strings.Contains(e, "does not match") {
		t.Errorf("profile of another model: exit %d, %s", code, e)
	}
	if _, e, code := stoke(t, "reorder", "-m", model, "--profile", model, "--out", filepath.Join(dir, "y.gguf")); code != 1 {
		t.Errorf("a model as the profile: exit %d, %s", code, e)
	}
	std := filepath.Join(dir, "std.gguf")
	if _, e, code := stoke(t, "synth", "--out", std, "--params", "2M", "--dtype", "q4_0", "--relu", "--seed", "3"); code != 0 {
		t.Fatalf("synth: %s", e)
	}
	// a quantized standard-layout model gets the neuron-major down its
	// sparse mode builds, and generates what the original does sparse
	stdHot := filepath.Join(dir, "std-hot.gguf")
	if _, e, code := stoke(t, "reorder", "-m", std, "--profile", prof, "--out", stdHot); code != 0 || !strings.Contains(e, "ffn_down_t") {
		t.Fatalf("quantized standard layout: exit %d, %s", code, e)
	}
	if a, b := gen(std, "--sparse"), gen(stdHot, "--sparse"); a != b {
		t.Errorf("standard layout, sparse: renumbered generates %q, original %q", b, a)
	}
}
