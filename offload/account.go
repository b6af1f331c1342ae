package offload

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
)

// Region names of the output head, which Desc describes by size only.
const (
	OutNormName = "output_norm" // final norm weights (+ bias), float32
	OutputName  = "output.weight"
)

// Limits on what a Desc and Options may ask for. With them every sum the
// planner forms fits an int64: a Desc beyond them is refused, not wrapped.
const (
	MaxLayers    = 1 << 12
	MaxWidth     = 1 << 24 // Dim, FFN, QDim, KVDim, Vocab
	MaxRowBytes  = 1 << 30 // one neuron's row in one matrix
	MaxKVType    = 8       // bytes per cached value
	MaxPositions = 1 << 28 // Seqs × Context
	MaxBatch     = 1 << 16
	MaxNeurons   = 1 << 26 // FFN × layers
	// MaxModelBytes bounds everything a plan could place (every tensor,
	// every neuron, the KV cache and scratch): 1 EiB.
	MaxModelBytes = 1 << 60
)

// alignUp rounds n up to a multiple of Align.
func alignUp(n int64) int64 { return (n + Align - 1) &^ (Align - 1) }

// sized is the arena footprint of one region of n bytes: 0 for an empty
// region (omitted from the plan), else n rounded up to Align.
func sized(n int64) int64 {
	if n <= 0 {
		return 0
	}
	return alignUp(n)
}

func tensorsBytes(ts []Tensor) int64 {
	var n int64
	for _, t := range ts {
		n += sized(t.Bytes)
	}
	return n
}

// hotPart is one packed region of a layer's hot neurons: its name part
// (HotName) and the bytes each neuron adds to it.
type hotPart struct {
	part string
	row  int64
}

// hotParts lists a layer's hot regions in arena order.
func hotParts(l *LayerDesc) [5]hotPart {
	b := func(on bool) int64 {
		if on {
			return 4
		}
		return 0
	}
	return [5]hotPart{{"gate", l.GateRow}, {"up", l.UpRow}, {"down", l.DownRow}, {"gate_b", b(l.GateBias)}, {"up_b", b(l.UpBias)}}
}

// hotBytes is the arena footprint of h hot neurons of layer l: each part
// (gate, up, down rows, biases) is one packed region, aligned.
func hotBytes(l *LayerDesc, h int) int64 {
	var n int64
	for _, p := range hotParts(l) {
		n += sized(int64(h) * p.row)
	}
	return n
}

// kvBytes is the footprint of one layer's KV cache (k and v regions).
func kvBytes(d *Desc, positions int) int64 {
	return 2 * sized(int64(positions)*int64(d.KVDim)*int64(d.KVType))
}

// scratchBytes is the footprint of Scratch(d, batch, withHead).
func scratchBytes(d *Desc, batch int, withHead bool) int64 {
	return tensorsBytes(Scratch(d, batch, withHead))
}

// headBytes is the extra footprint of the output head on the device: the
// final norm, the output matrix and the logits scratch.
func headBytes(d *Desc, batch int) int64 {
	return sized(d.OutNorm) + sized(d.OutputBytes) + scratchBytes(d, batch, true) - scratchBytes(d, batch, false)
}

// WeightBytes is the size of every weight the plan could place: attention,
// FFN-fixed and predictor tensors, every neuron's rows and biases, and the
// output head, unaligned, without KV cache or scratch. It is what "100% of
// the model" means to a budget.
func (d *Desc) WeightBytes() int64 {
	n := d.OutputBytes + d.OutNorm
	for i := range d.Layers {
		l := &d.Layers[i]
		for _, ts := range [][]Tensor{l.Attn, l.FFNFixed, l.Predictor} {
			for _, t := range ts {
				n += t.Bytes
			}
		}
		n += int64(d.FFN) * l.NeuronBytes()
	}
	return n
}

// Check reports whether d is a description the planner accepts: sizes
// within the package limits, frequencies in [0, 1] with one per neuron,
// and unique tensor names that do not collide with the planner's own
// region names.
func (d *Desc) Check() error {
	if d == nil {
		return fmt.Errorf("offload: nil Desc")
	}
	for _, w := range []struct {
		name string
		v    int
	}{{"Dim", d.Dim}, {"FFN", d.FFN}, {"QDim", d.QDim}, {"KVDim", d.KVDim}, {"Vocab", d.Vocab}} {
		if w.v < 0 || w.v > MaxWidth {
			return fmt.Errorf("offload: %s %d is outside [0, %d]", w.name, w.v, MaxWidth)
		}
	}
	if len(d.Layers) > MaxLayers {
		return fmt.Errorf("offload: %d layers, over the limit of %d", len(d.Layers), MaxLayers)
	}
	if int64(d.FFN)*int64(len(d.Layers)) > MaxNeurons {
		return fmt.Errorf("offload: %d layers × %d neurons is over the limit of %d neurons", len(d.Layers), d.FFN, MaxNeurons)
	}
	if d.KVType < 1 || d.KVType > MaxKVType {
		return fmt.Errorf("offload: KVType %d is outside [1, %d] bytes", d.KVType, MaxKVType)
	}
	if d.OutputBytes < 0 || d.OutNorm < 0 || d.OutputBytes > MaxModelBytes || d.OutNorm > MaxModelBytes {
		return fmt.Errorf("offload: output head sizes %d, %d are out of range", d.OutputBytes, d.OutNorm)
	}
	names := map[string]bool{}
	total := d.OutputBytes + d.OutNorm // ≤ 2^61, so the sums below cannot wrap before the check
	for i := range d.Layers {
		l := &d.Layers[i]
		for _, ts := range [][]Tensor{l.Attn, l.FFNFixed, l.Predictor} {
			for _, t := range ts {
				if t.Bytes < 0 || t.Bytes > MaxModelBytes {
					return fmt.Errorf("offload: layer %d: tensor %q has %d bytes", i, t.Name, t.Bytes)
				}
				if t.Name == "" || names[t.Name] || reservedName(t.Name) {
					return fmt.Errorf("offload: layer %d: tensor name %q is empty, repeated or reserved", i, t.Name)
				}
				names[t.Name] = true
				total += t.Bytes
				if total > MaxModelBytes {
					return fmt.Errorf("offload: the model is over %d bytes", int64(MaxModelBytes))
				}
			}
		}
		for _, r := range []int64{l.GateRow, l.UpRow, l.DownRow} {
			if r < 0 || r > MaxRowBytes {
				return fmt.Errorf("offload: layer %d: neuron row of %d bytes is outside [0, %d]", i, r, MaxRowBytes)
			}
		}
		total += int64(d.FFN) * l.NeuronBytes() // ≤ 2^24 · (3·2^30 + 8) < 2^56
		if total > MaxModelBytes {
			return fmt.Errorf("offload: the model is over %d bytes", int64(MaxModelBytes))
		}
		if l.Freq != nil {
			if len(l.Freq) != d.FFN {
				return fmt.Errorf("offload: layer %d has %d frequencies for %d neurons", i, len(l.Freq), d.FFN)
			}
			for j, f := range l.Freq {
				if !(f >= 0 && f <= 1) {
					return fmt.Errorf("offload: layer %d neuron %d: frequency %v is outside [0, 1]", i, j, f)
				}
			}
		}
	}
	return nil
}

// reservedName reports whether a tensor name would collide with a region
// the planner names itself (kv.*, blk.N.hot.*, scratch.*, the head).
func reservedName(s string) bool {
	return s == OutNormName || s == OutputName || strings.HasPrefix(s, "kv.") ||
		strings.HasPrefix(s, "scratch.") || strings.Contains(s, ".hot.")
}

// arena lays regions out one after another, each at an aligned offset.
type arena struct {
	regions []Region
	off     int64
}

// add appends a region of n bytes (nothing when n is 0) and returns its
// footprint.
func (a *arena) add(name string, n int64) int64 {
	if n <= 0 {
		return 0
	}
	a.regions = append(a.regions, Region{Name: name, Offset: a.off, Bytes: n})
	s := alignUp(n)
	a.off += s
	return s
}

func (a *arena) addTensors(ts []Tensor) int64 {
	var n int64
	for _, t := range ts {
		n += a.add(t.Name, t.Bytes)
	}
	return n
}

// FormatBytes prints a byte count in binary units, as "7.9 GiB",
// "512.0 MiB" or "300 B".
func FormatBytes(n int64) string {
	const unit = 1024
	if n < unit && n > -unit {
		return strconv.FormatInt(n, 10) + " B"
	}
	v := float64(n)
	for _, u := range []string{"KiB", "MiB", "GiB", "TiB", "PiB"} {
		v /= unit
		if math.Abs(v) < unit || u == "PiB" {
			return strconv.FormatFloat(v, 'f', 1, 64) + " " + u
		}
	}
	return strconv.FormatInt(n, 10) + " B"
}

// finish lays out the placement p describes (p.Layers[l].Attn and
// Predictor, p.Output, hot[l] neurons of each layer taken from order[l],
// or all of them when order is nil) as one arena, and fills in the hot
// lists, byte counts and hit rates.
//
// Arena order: per layer its attention, FFN-fixed and predictor tensors,
// KV cache (k, v) and packed hot rows (gate, up, down, gate_b, up_b); then
// the output norm and matrix; then the scratch buffers.
func finish(d *Desc, p *Plan, hot []int, order [][]int32) {
	fs := freqs(d)
	var a arena
	var hotAct, allAct float64
	pos := p.Context * p.Seqs
	for l := range d.Layers {
		ld, lp := &d.Layers[l], &p.Layers[l]
		if h := hot[l]; h > 0 {
			if order == nil || order[l] == nil {
				lp.Hot = make([]int32, h)
				for i := range lp.Hot {
					lp.Hot[i] = int32(i)
				}
			} else {
				lp.Hot = slices.Clone(order[l][:h])
				slices.Sort(lp.Hot)
			}
		}
		if lp.Attn {
			lp.Bytes += a.addTensors(ld.Attn)
			lp.Bytes += a.addTensors(ld.FFNFixed)
			if lp.Predictor {
				lp.Bytes += a.addTensors(ld.Predictor)
			}
			kv := int64(pos) * int64(d.KVDim) * int64(d.KVType)
			lp.Bytes += a.add(KVName(l, "k"), kv)
			lp.Bytes += a.add(KVName(l, "v"), kv)
		}
		for _, part := range hotParts(ld) {
			lp.Bytes += a.add(HotName(l, part.part), int64(len(lp.Hot))*part.row)
		}
		var lh, la float64
		for _, f := range fs[l] {
			la += f
		}
		for _, i := range lp.Hot {
			lh += fs[l][i]
		}
		switch {
		case la > 0:
			lp.HitRate = lh / la
		case d.FFN > 0:
			lp.HitRate = float64(len(lp.Hot)) / float64(d.FFN)
		}
		hotAct += lh
		allAct += la
	}
	placed := p.Output
	for l := range p.Layers {
		placed = placed || p.Layers[l].Attn || len(p.Layers[l].Hot) > 0
	}
	if p.Output {
		a.add(OutNormName, d.OutNorm)
		a.add(OutputName, d.OutputBytes)
	}
	if placed {
		for _, t := range Scratch(d, p.Batch, p.Output) {
			a.add(t.Name, t.Bytes)
		}
	}
	p.Regions = a.regions
	p.TotalBytes = a.off
	switch {
	case allAct > 0:
		p.HitRate = hotAct / allAct
	case d.FFN > 0 && len(d.Layers) > 0:
		var n int
		for l := range p.Layers {
			n += len(p.Layers[l].Hot)
		}
		p.HitRate = float64(n) / float64(d.FFN*len(d.Layers))
	}
}
