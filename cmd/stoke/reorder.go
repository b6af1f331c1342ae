package main

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/stokehq/stoke/engine"
	"github.com/stokehq/stoke/models/arch"
	"github.com/stokehq/stoke/models/gguf"
	"github.com/stokehq/stoke/predictor"
)

// keyNeuronOrder records in a reordered model which profile numbered its
// FFN neurons hot first; keyNeuronOrderID identifies the numbering (a hash
// of the permutations, and of the source's own, if it was renumbered
// before), and keyPredOrderID, in a predictor sidecar, the numbering of
// the model it predicts for. A predictor that predicts for another
// numbering picks the wrong neurons, so the sparse commands refuse one
// (checkPredictorOrder).
const (
	keyNeuronOrder   = "stoke.ffn.neuron_order"
	keyNeuronOrderID = "stoke.ffn.neuron_order_id"
	keyPredOrderID   = "stoke.predictor.neuron_order_id"
)

// orderID identifies the numbering order gives a model numbered src ("":
// as converted).
func orderID(src string, order [][]int32) string {
	h := sha256.New()
	h.Write([]byte(src))
	var b [4]byte
	for _, o := range order {
		binary.LittleEndian.PutUint32(b[:], uint32(len(o)))
		h.Write(b[:])
		for _, v := range o {
			binary.LittleEndian.PutUint32(b[:], uint32(v))
			h.Write(b[:])
		}
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// predictorOrderID returns the numbering the predictor sidecar at path
// predicts for ("" when it records none: trained on a model as
// converted, or by another tool).
func predictorOrderID(path string) (string, error) {
	f, err := gguf.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	id, _ := f.String(keyPredOrderID)
	return id, nil
}

// checkPredictorOrder fails unless the predictor sidecar at predPath
// predicts for the numbering of the model m.
func checkPredictorOrder(m *gguf.File, model, predPath string) error {
	pid, err := predictorOrderID(predPath)
	if err != nil {
		return err
	}
	mid, _ := m.String(keyNeuronOrderID)
	switch {
	case pid == mid:
		return nil
	case pid == "":
		return fmt.Errorf("predictor %s was trained before %s had its FFN neurons renumbered (stoke reorder), so it would pick the wrong neurons: renumber it with stoke reorder --predictor, or train one on this model", predPath, model)
	default:
		return fmt.Errorf("predictor %s predicts for another numbering of the FFN neurons than %s has (stoke reorder): use the predictor written with this model, or train one on it", predPath, model)
	}
}

// cmdReorder writes a model whose FFN neurons are numbered hot first by a
// profile's firing counts (arch.PermuteFFN): the same model, whose sparse
// FFN reads the rows most tokens need as long runs at the front of each
// matrix instead of short runs scattered over it. A predictor trained on
// the original numbering, and the profile itself, are renumbered with it
// on request; a predictor embedded in the model (PowerInfer's fc1/fc2)
// always is. A quantized ffn_down, whose blocks run along the neurons,
// gives way to the neuron-major ffn_down_t that sparse mode builds from it
// (engine.Model.NeuronMajorDown), which also spares sparse runs of the
// renumbered file that build at load.
func cmdReorder(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("reorder", stderr)
	model := fs.String("m", "", "GGUF model `file` to renumber (required)")
	profPath := fs.String("profile", "", "profile `file` of the model, from stoke profile (required)")
	out := fs.String("out", "", "GGUF model `file` to write (required)")
	predIn := fs.String("predictor", "", "predictor `file` trained on the model, to renumber too (with --predictor-out)")
	predOut := fs.String("predictor-out", "", "renumbered predictor `file` to write")
	profOut := fs.String("profile-out", "", "renumbered profile `file` to write (optional)")
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	if *model == "" || *profPath == "" || *out == "" {
		return usagef("-m, --profile and --out are required")
	}
	if (*predIn == "") != (*predOut == "") {
		return usagef("--predictor and --predictor-out come together")
	}
	for _, p := range []string{*out, *predOut, *profOut} {
		if p != "" && sameFile(p, *model) {
			return usagef("%s is the model being read; write the renumbered model elsewhere", p)
		}
	}
	f, err := gguf.Open(*model)
	if err != nil {
		return err
	}
	defer f.Close()
	c, err := arch.ConfigFromGGUF(f)
	if err != nil {
		return err
	}
	prof, err := predictor.ReadProfile(*profPath)
	if err != nil {
		return err
	}
	if len(prof.Layers) != c.Layers || len(prof.Layers) == 0 || prof.Layers[0].Dim != c.Dim || prof.Layers[0].FFN != c.FFN {
		return fmt.Errorf("profile %s does not match model %s (layers/dim/ffn)", *profPath, *model)
	}
	if prof.Tokens == 0 {
		return fmt.Errorf("profile %s has recorded no token: it cannot tell hot neurons from cold", *profPath)
	}
	var pred *predictor.Predictor
	if *predIn != "" { // read before writing anything
		if err := checkPredictorOrder(f, *model, *predIn); err != nil {
			return err
		}
		if pred, err = predictor.ReadPredictorGGUF(*predIn); err != nil {
			return err
		}
	}
	order := prof.HotFirst()
	w, dropped, err := arch.PermuteFFN(f, order, nil)
	built := false
	if errors.Is(err, arch.ErrDownNotPermutable) {
		// A quantized ffn_down: write the neuron-major down the sparse
		// FFN would build at load (Q8_0) in its place.
		m, lerr := engine.Load(*model)
		if lerr != nil {
			return lerr
		}
		defer m.Close()
		downT, derr := m.NeuronMajorDown()
		if derr != nil {
			return derr
		}
		w, dropped, err = arch.PermuteFFN(f, order, downT)
		built = true
	}
	if err != nil {
		return err
	}
	src, _ := f.String(keyNeuronOrderID)
	id := orderID(src, order)
	w.AddKV(keyNeuronOrder, gguf.String("hot first by the firing counts of "+filepath.Base(*profPath)))
	w.AddKV(keyNeuronOrderID, gguf.String(id))
	if err := gguf.WriteFile(*out, w); err != nil {
		return err
	}
	if built {
		fmt.Fprintf(stderr, "stoke reorder: ffn_down is quantized along the neurons, so each layer's was replaced by the neuron-major ffn_down_t that `stoke run --sparse` builds from it (Q8_0); the renumbered model computes what the original does in sparse mode\n")
	} else if len(dropped) > 0 {
		fmt.Fprintf(stderr, "stoke reorder: left out %s (quantized along the neurons; the engine computes the down projection from ffn_down_t)\n", strings.Join(dropped, ", "))
	}
	if pred != nil {
		q, err := pred.Permute(order)
		if err != nil {
			return err
		}
		if err := q.WriteGGUF(*predOut, map[string]string{"stoke.predictor.model": *out, keyPredOrderID: id}); err != nil {
			return err
		}
	}
	if *profOut != "" {
		q, err := prof.Permute(order)
		if err != nil {
			return err
		}
		if err := q.WriteGGUF(*profOut); err != nil {
			return err
		}
	}
	// What the order buys: the share of all firings that land in the
	// first 5, 10 and 25% of each layer's neurons, over all layers.
	heads := []float64{0.05, 0.10, 0.25}
	in := make([]uint64, len(heads))
	var all uint64
	for l, lp := range prof.Layers {
		for k, i := range order[l] {
			n := uint64(lp.Count[i])
			all += n
			for h, frac := range heads {
				if float64(k) < frac*float64(len(order[l])) {
					in[h] += n
				}
			}
		}
	}
	parts := make([]string, len(heads))
	for h, frac := range heads {
		share := 0.0
		if all > 0 {
			share = float64(in[h]) / float64(all)
		}
		parts[h] = fmt.Sprintf("first %g%% of neurons: %.1f%% of firings", 100*frac, 100*share)
	}
	fmt.Fprintf(stdout, "wrote %s: %d layers renumbered hot first; %s\n", *out, c.Layers, strings.Join(parts, "; "))
	return nil
}

// sameFile reports whether paths a and b name one existing file.
func sameFile(a, b string) bool {
	sa, err1 := os.Stat(a)
	sb, err2 := os.Stat(b)
	return err1 == nil && err2 == nil && os.SameFile(sa, sb)
}
