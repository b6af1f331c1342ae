package offload_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stokehq/stoke/offload"
)

// The tests below recompute every size from the Desc with their own
// formulas, so they check the planner's accounting rather than reuse it.

func up(n int64) int64 {
	if n <= 0 {
		return 0
	}
	return (n + offload.Align - 1) / offload.Align * offload.Align
}

func tensorsSize(ts []offload.Tensor) int64 {
	var n int64
	for _, t := range ts {
		n += up(t.Bytes)
	}
	return n
}

func rows(l *offload.LayerDesc) []int64 {
	b := func(on bool) int64 {
		if on {
			return 4
		}
		return 0
	}
	return []int64{l.GateRow, l.UpRow, l.DownRow, b(l.GateBias), b(l.UpBias)}
}

// hotSize is what h hot neurons of l take: one aligned region per part.
func hotSize(l *offload.LayerDesc, h int) int64 {
	var n int64
	for _, r := range rows(l) {
		n += up(int64(h) * r)
	}
	return n
}

func kvSize(d *offload.Desc, o offload.Options) int64 {
	return 2 * up(int64(o.Context)*int64(max(o.Seqs, 1))*int64(d.KVDim)*int64(d.KVType))
}

func scratchSize(d *offload.Desc, o offload.Options, head bool) int64 {
	return tensorsSize(offload.Scratch(d, max(o.Batch, 1), head))
}

func headSize(d *offload.Desc, o offload.Options) int64 {
	return up(d.OutNorm) + up(d.OutputBytes) + scratchSize(d, o, true) - scratchSize(d, o, false)
}

// emptyScratch is the scratch an empty plan would add with its first
// placement (a plan with anything on the device has it already).
func emptyScratch(d *offload.Desc, o offload.Options, p *offload.Plan) int64 {
	if p.TotalBytes > 0 {
		return 0
	}
	return scratchSize(d, o, false)
}

func baseSize(d *offload.Desc, o offload.Options, l int) int64 {
	ld := &d.Layers[l]
	return tensorsSize(ld.Attn) + tensorsSize(ld.FFNFixed) + tensorsSize(ld.Predictor) + kvSize(d, o)
}

func wholeSize(d *offload.Desc, o offload.Options, l int) int64 {
	ld := &d.Layers[l]
	return tensorsSize(ld.Attn) + tensorsSize(ld.FFNFixed) + hotSize(ld, d.FFN) + kvSize(d, o)
}

// effFreq mirrors the documented rule for unknown frequencies.
func effFreq(d *offload.Desc) [][]float64 {
	var sum float64
	var n int
	for _, l := range d.Layers {
		for _, f := range l.Freq {
			sum += f
			n++
		}
	}
	u := 1.0
	if n > 0 && sum > 0 {
		u = sum / float64(n)
	}
	out := make([][]float64, len(d.Layers))
	for i, l := range d.Layers {
		out[i] = l.Freq
		if l.Freq == nil {
			out[i] = make([]float64, d.FFN)
			for j := range out[i] {
				out[i][j] = u
			}
		}
	}
	return out
}

// randomDesc makes a small model with random shapes, row sizes (some
// multiples of Align, some not, some differing between layers), biases,
// predictors and frequencies (nil, uniform, skewed, tied, zero).
func randomDesc(rng *rand.Rand, maxLayers, maxFFN int) *offload.Desc {
	d := &offload.Desc{
		Name: "random", Dim: rng.IntN(64), FFN: rng.IntN(maxFFN + 1), QDim: rng.IntN(64),
		KVDim: rng.IntN(48), Vocab: rng.IntN(200), KVType: []int{2, 4}[rng.IntN(2)],
		OutputBytes: int64(rng.IntN(6000)), OutNorm: int64(rng.IntN(3) * 4 * rng.IntN(64)),
	}
	rowSizes := []int64{0, 18, 34, 64, 144, 210, 256, 512, 1024}
	aligned := rng.IntN(3) == 0 // every row a multiple of Align: no padding
	sameRows := rng.IntN(2) == 0
	pick := func() int64 {
		if aligned {
			return int64(rng.IntN(4)) * offload.Align
		}
		if rng.IntN(3) == 0 {
			return int64(rng.IntN(700))
		}
		return rowSizes[rng.IntN(len(rowSizes))]
	}
	gate, upr, down := pick(), pick(), pick()
	gb, ub := rng.IntN(3) == 0, rng.IntN(3) == 0
	if aligned {
		gb, ub = false, false
	}
	pred := rng.IntN(2) == 0
	d.Layers = make([]offload.LayerDesc, rng.IntN(maxLayers+1))
	for i := range d.Layers {
		l := &d.Layers[i]
		for j := range rng.IntN(8) {
			l.Attn = append(l.Attn, offload.Tensor{Name: fmt.Sprintf("blk.%d.attn.%d", i, j), Bytes: int64(rng.IntN(3000)) * int64(rng.IntN(2))})
		}
		for j := range rng.IntN(3) {
			l.FFNFixed = append(l.FFNFixed, offload.Tensor{Name: fmt.Sprintf("blk.%d.ffnfix.%d", i, j), Bytes: int64(rng.IntN(500))})
		}
		if pred {
			l.Predictor = []offload.Tensor{{Name: fmt.Sprintf("blk.%d.fc1", i), Bytes: int64(rng.IntN(2000))},
				{Name: fmt.Sprintf("blk.%d.fc2", i), Bytes: int64(rng.IntN(2000))}}
		}
		if !sameRows {
			gate, upr, down = pick(), pick(), pick()
		}
		l.GateRow, l.UpRow, l.DownRow, l.GateBias, l.UpBias = gate, upr, down, gb, ub
		switch rng.IntN(5) {
		case 0: // unknown
		case 1: // ties: a few distinct values
			l.Freq = make([]float64, d.FFN)
			for j := range l.Freq {
				l.Freq[j] = float64(rng.IntN(4)) / 3
			}
		case 2: // skewed, a hot set
			l.Freq = make([]float64, d.FFN)
			for j := range l.Freq {
				l.Freq[j] = math.Pow(rng.Float64(), 6)
			}
		case 3: // all silent
			l.Freq = make([]float64, d.FFN)
		default:
			l.Freq = make([]float64, d.FFN)
			for j := range l.Freq {
				l.Freq[j] = rng.Float64()
			}
		}
	}
	return d
}

// fullSize bounds what placing everything takes.
func fullSize(d *offload.Desc, o offload.Options) int64 {
	n := scratchSize(d, o, true) + up(d.OutNorm) + up(d.OutputBytes)
	for l := range d.Layers {
		n += baseSize(d, o, l) + hotSize(&d.Layers[l], d.FFN)
	}
	return n
}

func randomOptions(rng *rand.Rand, d *offload.Desc) offload.Options {
	o := offload.Options{
		Mode:    []offload.Mode{offload.ModeCPU, offload.ModeLayerSplit, offload.ModeHybrid, offload.ModeHybrid}[rng.IntN(4)],
		Context: 1 + rng.IntN(64), Seqs: rng.IntN(3), Batch: rng.IntN(4),
		Layers:  rng.IntN(len(d.Layers)+2) - 1,
		Reserve: int64(rng.IntN(1000)),
	}
	if rng.IntN(2) == 0 {
		o.CPUBandwidth, o.DeviceBandwidth = 1e9+rng.Float64()*5e10, 1e11+rng.Float64()*3e12
	}
	full := fullSize(d, o)
	switch rng.IntN(6) {
	case 0:
		o.Budget = 0
	case 1:
		o.Budget = full
	case 2:
		o.Budget = full + int64(rng.IntN(1000))
	default:
		o.Budget = int64(rng.Float64() * 1.1 * float64(full))
	}
	return o
}

// belongs reports whether region name is one of layer l's.
func layerRegions(d *offload.Desc, l int) map[string]bool {
	m := map[string]bool{offload.KVName(l, "k"): true, offload.KVName(l, "v"): true}
	for _, p := range []string{"gate", "up", "down", "gate_b", "up_b"} {
		m[offload.HotName(l, p)] = true
	}
	ld := &d.Layers[l]
	for _, ts := range [][]offload.Tensor{ld.Attn, ld.FFNFixed, ld.Predictor} {
		for _, t := range ts {
			m[t.Name] = true
		}
	}
	return m
}

// checkPlan checks every documented property of a successful plan.
func checkPlan(t *testing.T, d *offload.Desc, o offload.Options, p *offload.Plan) {
	t.Helper()
	if p.TotalBytes > o.Budget && o.Mode != offload.ModeCPU {
		t.Fatalf("TotalBytes %d > budget %d", p.TotalBytes, o.Budget)
	}
	if p.Mode != o.Mode || len(p.Layers) != len(d.Layers) || p.Reserve != o.Reserve {
		t.Fatalf("plan header %v/%d/%d for mode %v, %d layers, reserve %d", p.Mode, len(p.Layers), p.Reserve, o.Mode, len(d.Layers), o.Reserve)
	}
	// regions: aligned, ascending, packed, non-empty, unique, summing to TotalBytes
	var end, sum int64
	seen := map[string]bool{}
	for _, r := range p.Regions {
		if r.Offset%offload.Align != 0 || r.Offset != end || r.Bytes <= 0 || seen[r.Name] {
			t.Fatalf("region %+v (previous end %d, seen %v)", r, end, seen[r.Name])
		}
		seen[r.Name] = true
		end = r.Offset + up(r.Bytes)
		sum += up(r.Bytes)
	}
	if end != p.TotalBytes || sum != p.TotalBytes {
		t.Fatalf("regions end at %d, sum to %d; TotalBytes %d", end, sum, p.TotalBytes)
	}
	fs := effFreq(d)
	var layerSum, hotAll, actAll float64
	var layerBytes int64
	for l := range d.Layers {
		ld, lp := &d.Layers[l], &p.Layers[l]
		mine := layerRegions(d, l)
		var b int64
		for _, r := range p.Regions {
			if mine[r.Name] {
				b += up(r.Bytes)
			}
		}
		if b != lp.Bytes {
			t.Fatalf("layer %d: Bytes %d, its regions take %d", l, lp.Bytes, b)
		}
		layerBytes += b
		for i, h := range lp.Hot {
			if h < 0 || int(h) >= d.FFN || (i > 0 && lp.Hot[i-1] >= h) {
				t.Fatalf("layer %d: hot list %v is not ascending, unique and in [0, %d)", l, lp.Hot, d.FFN)
			}
		}
		for k, row := range rows(ld) {
			part := []string{"gate", "up", "down", "gate_b", "up_b"}[k]
			r, ok := p.Region(offload.HotName(l, part))
			want := int64(len(lp.Hot)) * row
			if (want > 0) != ok || (ok && r.Bytes != want) {
				t.Fatalf("layer %d: region %s = %+v (%v), want %d bytes", l, part, r, ok, want)
			}
		}
		_, kv := p.Region(offload.KVName(l, "k"))
		if kv != (lp.Attn && d.KVDim > 0) {
			t.Fatalf("layer %d: attn %v but kv region %v", l, lp.Attn, kv)
		}
		if len(lp.Hot) > 0 && !lp.Attn && (p.Mode != offload.ModeHybrid || p.Layers[0].Attn) {
			// only a hybrid plan whose budget holds no layer's attention
			// serves neurons alone
			t.Fatalf("layer %d: hot neurons without attention on the device", l)
		}
		if l > 0 && lp.Attn && !p.Layers[l-1].Attn {
			t.Fatalf("device layers are not a prefix")
		}
		var lh, la float64
		for _, i := range lp.Hot {
			lh += fs[l][i]
		}
		for _, f := range fs[l] {
			la += f
		}
		hotAll += lh
		actAll += la
		if !(lp.HitRate >= 0 && lp.HitRate <= 1+1e-12) || (la > 0 && math.Abs(lp.HitRate-lh/la) > 1e-9) {
			t.Fatalf("layer %d: hit rate %v, want %v/%v", l, lp.HitRate, lh, la)
		}
		layerSum += lp.HitRate
	}
	var rest int64
	for _, r := range p.Regions {
		if r.Name == offload.OutputName || r.Name == offload.OutNormName || strings.HasPrefix(r.Name, "scratch.") {
			rest += up(r.Bytes)
		}
	}
	if layerBytes+rest != p.TotalBytes {
		t.Fatalf("layers take %d, head and scratch %d, total %d", layerBytes, rest, p.TotalBytes)
	}
	if actAll > 0 && math.Abs(p.HitRate-hotAll/actAll) > 1e-9 {
		t.Fatalf("hit rate %v, want %v", p.HitRate, hotAll/actAll)
	}
	if _, ok := p.Region("scratch.logits"); ok != (p.Output && d.Vocab > 0) {
		t.Fatalf("logits scratch %v with output %v", ok, p.Output)
	}

	k := 0
	for k < len(d.Layers) && p.Layers[k].Attn {
		k++
	}
	switch o.Mode {
	case offload.ModeCPU:
		if p.TotalBytes != 0 || len(p.Regions) != 0 || k != 0 || p.Output {
			t.Fatalf("cpu plan places something: %d bytes", p.TotalBytes)
		}
	case offload.ModeLayerSplit:
		if o.Layers >= 0 && k != o.Layers {
			t.Fatalf("layer-split of %d placed %d", o.Layers, k)
		}
		for l := range k {
			if len(p.Layers[l].Hot) != d.FFN || p.Layers[l].Predictor {
				t.Fatalf("layer-split layer %d: %d hot of %d, predictor %v", l, len(p.Layers[l].Hot), d.FFN, p.Layers[l].Predictor)
			}
		}
		if p.Output && k != len(d.Layers) {
			t.Fatalf("layer-split head on the device with %d of %d layers", k, len(d.Layers))
		}
		if o.Layers < 0 && k < len(d.Layers) && p.TotalBytes+wholeSize(d, o, k)+emptyScratch(d, o, p) <= o.Budget {
			t.Fatalf("layer-split left out layer %d that fits", k)
		}
	case offload.ModeHybrid:
		var hotBytes int64
		for l := range k {
			hotBytes += hotSize(&d.Layers[l], len(p.Layers[l].Hot))
			if p.Layers[l].Predictor != (len(d.Layers[l].Predictor) > 0) {
				t.Fatalf("layer %d: predictor %v", l, p.Layers[l].Predictor)
			}
		}
		phase1 := p.TotalBytes - hotBytes
		if p.TotalBytes == 0 {
			phase1 = scratchSize(d, o, false) // nothing placed: not even the scratch was allocated
		}
		if k < len(d.Layers) {
			// phase 1 stopped at the first layer that did not fit
			head := int64(0)
			if p.Output {
				head = headSize(d, o)
			}
			if phase1-head+baseSize(d, o, k) <= o.Budget {
				t.Fatalf("hybrid left out layer %d's attention, which fits", k)
			}
		}
		if !p.Output && phase1+headSize(d, o) <= o.Budget {
			t.Fatalf("hybrid left the head on the CPU though it fits")
		}
		// phase 2 is maximal: no layer can take one more neuron
		for l := range k {
			h := len(p.Layers[l].Hot)
			if h < d.FFN && p.TotalBytes+hotSize(&d.Layers[l], h+1)-hotSize(&d.Layers[l], h) <= o.Budget {
				t.Fatalf("layer %d has room for neuron %d: total %d, budget %d", l, h+1, p.TotalBytes, o.Budget)
			}
		}
	}
}

var (
	reAll = regexp.MustCompile(`or all (\d+) at context (\d+)`)
	reOne = regexp.MustCompile(`or one layer at context (\d+)`)
	reFit = regexp.MustCompile(`fits (\d+) layers'`)
)

// checkRefusal checks that a refusal was due and that what it says fits
// does fit.
func checkRefusal(t *testing.T, d *offload.Desc, o offload.Options, err error) {
	t.Helper()
	msg := err.Error()
	if !strings.Contains(msg, "fits") {
		t.Fatalf("refusal does not say what fits: %v", err)
	}
	if o.Seqs == 0 {
		o.Seqs = 1
	}
	scratch := scratchSize(d, o, false)
	switch o.Mode {
	case offload.ModeHybrid:
		t.Fatalf("hybrid refused (it places what fits, possibly nothing): %v", err)
	case offload.ModeLayerSplit:
		n := o.Layers
		if n < 0 {
			n = 1
		}
		need := scratch
		for l := range min(n, len(d.Layers)) {
			need += wholeSize(d, o, l)
		}
		if need <= o.Budget {
			t.Fatalf("layer-split of %d refused though it needs %d of %d: %v", o.Layers, need, o.Budget, err)
		}
	default:
		t.Fatalf("mode %v refused: %v", o.Mode, err)
	}
	if m := reFit.FindStringSubmatch(msg); m != nil {
		n, _ := strconv.Atoi(m[1])
		need := scratch
		for l := range n {
			need += baseOrWhole(d, o, l)
		}
		if need > o.Budget || n < 1 {
			t.Fatalf("says %d layers fit, but they need %d of %d: %v", n, need, o.Budget, err)
		}
	}
	if m := reAll.FindStringSubmatch(msg); m != nil {
		n, _ := strconv.Atoi(m[1])
		c, _ := strconv.Atoi(m[2])
		oo := o
		oo.Context = c
		if o.Mode == offload.ModeLayerSplit && o.Layers < 0 {
			oo.Layers = n
		}
		p, err2 := offload.Solve(d, oo)
		if err2 != nil || !p.Layers[n-1].Attn {
			t.Fatalf("says all %d layers fit at context %d, but: %v (%v)", n, c, err2, err)
		}
		if c >= o.Context {
			t.Fatalf("suggested context %d is not below %d", c, o.Context)
		}
	}
	if m := reOne.FindStringSubmatch(msg); m != nil {
		c, _ := strconv.Atoi(m[1])
		oo := o
		oo.Context = c
		if o.Mode == offload.ModeLayerSplit {
			oo.Layers = 1
		}
		if _, err2 := offload.Solve(d, oo); err2 != nil {
			t.Fatalf("says one layer fits at context %d, but: %v (%v)", c, err2, err)
		}
	}
}

func baseOrWhole(d *offload.Desc, o offload.Options, l int) int64 {
	if o.Mode == offload.ModeLayerSplit {
		return wholeSize(d, o, l)
	}
	return baseSize(d, o, l)
}

// TestPlanProperties runs Solve over random models, budgets and modes and
// checks the accounting and placement properties of every plan, and that
// every refusal was due and says what fits.
func TestPlanProperties(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	n := 4000
	if testing.Short() {
		n = 500
	}
	var ok, refused int
	for it := range n {
		d := randomDesc(rng, 6, 40)
		o := randomOptions(rng, d)
		name := fmt.Sprintf("case %d: %d layers, ffn %d, %+v", it, len(d.Layers), d.FFN, o)
		p, err := offload.Solve(d, o)
		if err != nil {
			refused++
			t.Run(name, func(t *testing.T) { checkRefusal(t, d, o, err) })
			continue
		}
		ok++
		t.Run(name, func(t *testing.T) {
			checkPlan(t, d, o, p)
			if p2, _ := offload.Solve(d, o); !reflect.DeepEqual(p, p2) {
				t.Fatalf("Solve is not deterministic")
			}
		})
		if t.Failed() {
			return
		}
	}
	t.Logf("%d plans, %d refusals", ok, refused)
	if ok < n/3 || refused < n/50 {
		t.Errorf("the generator is lopsided: %d plans, %d refusals", ok, refused)
	}
}

// optimum is the best hot-neuron value for the layers the plan put on the
// device, with space bytes for their hot regions, by exhaustive search
// over hot counts (a layer's best h neurons are its h most frequent).
func optimum(d *offload.Desc, fs [][]float64, k int, space int64) float64 {
	prefix := make([][]float64, k) // prefix[l][h]: value of layer l's top h
	for l := range k {
		f := append([]float64(nil), fs[l]...)
		for i := range f { // descending
			for j := i + 1; j < len(f); j++ {
				if f[j] > f[i] {
					f[i], f[j] = f[j], f[i]
				}
			}
		}
		prefix[l] = make([]float64, len(f)+1)
		for i, v := range f {
			prefix[l][i+1] = prefix[l][i] + v
		}
	}
	var best float64
	var rec func(l int, space int64, v float64)
	rec = func(l int, space int64, v float64) {
		if l == k {
			best = max(best, v)
			return
		}
		for h := 0; h <= d.FFN; h++ {
			c := hotSize(&d.Layers[l], h)
			if c > space {
				break
			}
			rec(l+1, space-c, v+prefix[l][h])
		}
	}
	rec(0, space, 0)
	return best
}

// TestPlanGreedyOptimal compares the hybrid greedy with exhaustive search
// on tiny models: exactly optimal when every neuron has one size and rows
// need no padding; otherwise within the last item (and, with padding,
// the padding's worth of neurons), as Solve's comment proves.
func TestPlanGreedyOptimal(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 5))
	n := 3000
	if testing.Short() {
		n = 400
	}
	var exact int
	for it := range n {
		d := randomDesc(rng, 3, 7)
		o := randomOptions(rng, d)
		o.Mode = offload.ModeHybrid
		p, err := offload.Solve(d, o)
		if err != nil {
			continue
		}
		fs := effFreq(d)
		k := 0
		var hotBytes int64
		var got float64
		for k < len(d.Layers) && p.Layers[k].Attn {
			hotBytes += hotSize(&d.Layers[k], len(p.Layers[k].Hot))
			for _, i := range p.Layers[k].Hot {
				got += fs[k][i]
			}
			k++
		}
		space := o.Budget - (p.TotalBytes - hotBytes)
		opt := optimum(d, fs, k, space)
		if got > opt+1e-9 {
			t.Fatalf("case %d: greedy %v beats the optimum %v: the search or the accounting is wrong", it, got, opt)
		}
		sameSize, padded := true, false
		var vmax, rmax, slack float64
		for l := range k {
			ld := &d.Layers[l]
			if ld.NeuronBytes() != d.Layers[0].NeuronBytes() {
				sameSize = false
			}
			for _, r := range rows(ld) {
				if r%offload.Align != 0 {
					padded = true
					slack += offload.Align - 1
				}
			}
			for _, f := range fs[l] {
				vmax = max(vmax, f)
				if nb := ld.NeuronBytes(); nb > 0 {
					rmax = max(rmax, f/float64(nb))
				}
			}
		}
		if sameSize && !padded {
			exact++
			if math.Abs(got-opt) > 1e-9 {
				t.Fatalf("case %d: equal-size neurons: greedy %v, optimum %v\n%+v\n%+v", it, got, opt, d, p.Layers)
			}
			continue
		}
		if got < opt-vmax-rmax*slack-1e-9 {
			t.Fatalf("case %d: greedy %v below the bound: optimum %v − last item %v − padding %v", it, got, opt, vmax, rmax*slack)
		}
	}
	t.Logf("%d exact comparisons of %d", exact, n)
	if exact < n/20 {
		t.Errorf("only %d exact cases", exact)
	}
}

// TestPlanRefusalMessage checks the refusal of a 7B-shaped model in a
// budget that holds part of its attention.
func TestPlanRefusalMessage(t *testing.T) {
	d := shaped7B(nil)
	// hybrid never refuses: 100 MiB holds no layer's attention+KV at
	// 4096 positions, so it holds hot neurons only
	p, err := offload.Solve(d, offload.Options{Mode: offload.ModeHybrid, Budget: 100 << 20, Context: 4096})
	if err != nil || p.Layers[0].Attn || p.TotalBytes > 100<<20 || p.HitRate == 0 {
		t.Fatalf("hybrid in 100 MiB: %v", err)
	}
	_, err = offload.Solve(d, offload.Options{Mode: offload.ModeLayerSplit, Layers: 32, Budget: 5 << 30, Context: 4096})
	if err == nil || !regexp.MustCompile(`fits \d+ layers' weights\+KV`).MatchString(err.Error()) {
		t.Fatalf("layer-split 32 in 5 GiB: %v", err)
	}
	t.Log(err)
	p, err = offload.Solve(d, offload.Options{Mode: offload.ModeHybrid, Budget: 5 << 30, Context: 4096})
	if err != nil {
		t.Fatal(err)
	}
	if !p.Layers[31].Attn || !p.Output || p.TotalBytes > 5<<30 || p.TotalBytes < 5<<30-int64(d.Layers[0].NeuronBytes())-5*offload.Align*32 {
		t.Fatalf("hybrid in 5 GiB: total %d, layer 31 attn %v, output %v", p.TotalBytes, p.Layers[31].Attn, p.Output)
	}
}

// shaped7B is a 7B llama in Q4_0 (32 layers, dim 4096, ffn 11008, vocab
// 32000), with f per neuron when given.
func shaped7B(f func(l, i int) float64) *offload.Desc {
	const dim, ffn = 4096, 11008
	q4 := func(rows, cols int64) int64 { return rows * cols / 32 * 18 }
	d := &offload.Desc{Name: "7B", Dim: dim, FFN: ffn, QDim: dim, KVDim: dim, Vocab: 32000,
		OutputBytes: q4(32000, dim), OutNorm: 4 * dim, KVType: 2}
	for l := range 32 {
		p := fmt.Sprintf("blk.%d.", l)
		ld := offload.LayerDesc{
			Attn: []offload.Tensor{{p + "attn_norm.weight", 4 * dim}, {p + "attn_q.weight", q4(dim, dim)},
				{p + "attn_k.weight", q4(dim, dim)}, {p + "attn_v.weight", q4(dim, dim)}, {p + "attn_output.weight", q4(dim, dim)}},
			FFNFixed: []offload.Tensor{{p + "ffn_norm.weight", 4 * dim}},
			GateRow:  q4(1, dim), UpRow: q4(1, dim), DownRow: q4(1, dim),
		}
		if f != nil {
			ld.Freq = make([]float64, ffn)
			for i := range ld.Freq {
				ld.Freq[i] = f(l, i)
			}
		}
		d.Layers = append(d.Layers, ld)
	}
	return d
}

// TestPlanHotFirst: with a planted 10% hot set per layer and a budget that
// holds attention plus half the hot sets, every hot neuron placed is a
// planted one, and the hit rate matches.
func TestPlanHotFirst(t *testing.T) {
	hot := func(l, i int) bool { return (i*7+l)%10 == 0 }
	d := shaped7B(func(l, i int) float64 {
		if hot(l, i) {
			return 0.9
		}
		return 0.02
	})
	o := offload.Options{Mode: offload.ModeHybrid, Context: 2048, Seqs: 1, Batch: 1}
	o.Budget = 1 << 62
	all, err := offload.Solve(d, o)
	if err != nil {
		t.Fatal(err)
	}
	base := all.TotalBytes - int64(32*d.FFN)*d.Layers[0].NeuronBytes()
	o.Budget = base + int64(32*d.FFN/20)*d.Layers[0].NeuronBytes() + 32*3*offload.Align
	p, err := offload.Solve(d, o)
	if err != nil {
		t.Fatal(err)
	}
	checkPlan(t, d, o, p)
	var n int
	for l, lp := range p.Layers {
		for _, i := range lp.Hot {
			if !hot(l, int(i)) {
				t.Fatalf("layer %d: cold neuron %d is hot", l, i)
			}
		}
		n += len(lp.Hot)
	}
	if n < 32*d.FFN/20 {
		t.Fatalf("%d hot neurons, want %d", n, 32*d.FFN/20)
	}
	t.Logf("hit rate %.3f with %d hot neurons, %s", p.HitRate, n, offload.FormatBytes(p.TotalBytes))

	// balanced: ties spread across layers instead of filling layer 0 first
	o.CPUBandwidth, o.DeviceBandwidth = 20e9, 1e12
	pb, err := offload.Solve(d, o)
	if err != nil {
		t.Fatal(err)
	}
	checkPlan(t, d, o, pb)
	lo, hi := d.FFN, 0
	for _, lp := range pb.Layers {
		lo, hi = min(lo, len(lp.Hot)), max(hi, len(lp.Hot))
	}
	if hi-lo > 1 || math.Abs(pb.HitRate-p.HitRate) > 1e-9 {
		t.Fatalf("balanced: hot per layer in [%d, %d], hit rate %v vs %v", lo, hi, pb.HitRate, p.HitRate)
	}
}

func TestPlanRoofline(t *testing.T) {
	d := shaped7B(func(l, i int) float64 {
		if i%10 == 0 {
			return 1
		}
		return 0.05
	})
	const cpuBW, devBW = 20e9, 1e12
	est := func(o offload.Options) offload.Estimate {
		o.Context, o.CPUBandwidth, o.DeviceBandwidth = 1024, cpuBW, devBW
		p, err := offload.Solve(d, o)
		if err != nil {
			t.Fatal(err)
		}
		return offload.Roofline(d, p, cpuBW, devBW)
	}
	cpu := est(offload.Options{Mode: offload.ModeCPU})
	dense := est(offload.Options{Mode: offload.ModeLayerSplit, Layers: 0})
	half := est(offload.Options{Mode: offload.ModeLayerSplit, Layers: 16, Budget: 1 << 40})
	full := est(offload.Options{Mode: offload.ModeHybrid, Budget: 1 << 40})
	hyb := est(offload.Options{Mode: offload.ModeHybrid, Budget: 3 << 30})
	t.Logf("tok/s: cpu sparse %.1f, dense %.1f, layer-split 16 %.1f, hybrid 3 GiB %.1f, all on device %.1f",
		cpu.TokensPerSec, dense.TokensPerSec, half.TokensPerSec, hyb.TokensPerSec, full.TokensPerSec)
	if !(dense.TokensPerSec < cpu.TokensPerSec && cpu.TokensPerSec < hyb.TokensPerSec && hyb.TokensPerSec < full.TokensPerSec && dense.TokensPerSec < half.TokensPerSec) {
		t.Fatalf("roofline order is wrong")
	}
	// dense CPU decode reads every weight once
	if got, want := dense.CPUBytes, float64(d.WeightBytes()); math.Abs(got-want) > 1 || dense.DeviceBytes != 0 {
		t.Fatalf("dense reads %v bytes, want %v", got, want)
	}
	if math.Abs(dense.Seconds-float64(d.WeightBytes())/cpuBW) > 1e-12 {
		t.Fatalf("dense time %v", dense.Seconds)
	}
	if full.CPUBytes != 0 {
		t.Fatalf("all on the device still reads %v bytes on the CPU", full.CPUBytes)
	}
}

func TestPlanOptionsErrors(t *testing.T) {
	d := shaped7B(nil)
	for _, o := range []offload.Options{
		{Mode: offload.ModeHybrid, Context: 0, Budget: 1 << 30},
		{Mode: offload.ModeHybrid, Context: 10, Budget: -1},
		{Mode: offload.ModeLayerSplit, Context: 10, Layers: 33},
		{Mode: offload.ModeLayerSplit, Context: 10, Layers: -2},
		{Mode: 9, Context: 10},
		{Mode: offload.ModeHybrid, Context: 1 << 20, Seqs: 1 << 10},
		{Mode: offload.ModeHybrid, Context: 10, CPUBandwidth: math.NaN()},
	} {
		if _, err := offload.Solve(d, o); err == nil {
			t.Errorf("%+v: no error", o)
		}
	}
	bad := shaped7B(nil)
	bad.Layers[3].Freq = []float64{0.5}
	if _, err := offload.Solve(bad, offload.Options{Mode: offload.ModeHybrid, Context: 8, Budget: 1 << 40}); err == nil {
		t.Errorf("short Freq accepted")
	}
	bad = shaped7B(nil)
	bad.Layers[3].Attn[1].Name = bad.Layers[2].Attn[1].Name
	if _, err := offload.Solve(bad, offload.Options{Mode: offload.ModeHybrid, Context: 8, Budget: 1 << 40}); err == nil {
		t.Errorf("duplicate tensor name accepted")
	}
	for i, mut := range []func(d *offload.Desc){
		func(d *offload.Desc) { d.Layers[2].Freq = make([]float64, d.FFN); d.Layers[2].Freq[5] = math.NaN() },
		func(d *offload.Desc) { d.Layers[2].DownRow = -1 },
		func(d *offload.Desc) { d.KVType = 0 },
		func(d *offload.Desc) { d.Layers[1].Attn[2].Bytes = -5 },
		func(d *offload.Desc) { d.FFN = 1 << 25 },
		func(d *offload.Desc) { d.OutputBytes = -1 },
	} {
		bad := shaped7B(nil)
		mut(bad)
		if _, err := offload.Solve(bad, offload.Options{Mode: offload.ModeCPU}); err == nil {
			t.Errorf("bad Desc %d accepted", i)
		}
	}
	bad = shaped7B(nil)
	bad.Layers[0].Attn[0].Name = "kv.0.k"
	if _, err := offload.Solve(bad, offload.Options{Mode: offload.ModeCPU}); err == nil {
		t.Errorf("reserved tensor name accepted")
	}
}

func TestFormatBytes(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 6 << 30: "6.0 GiB", 1536 << 20: "1.5 GiB"} {
		if got := offload.FormatBytes(n); got != want {
			t.Errorf("FormatBytes(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestPlanProfiles(t *testing.T) {
	d := shaped7B(func(l, i int) float64 {
		if i%10 == 0 {
			return 0.95
		}
		return 0.03
	})
	o := offload.Options{Mode: offload.ModeHybrid, Budget: 10 << 30, Context: 4096, Batch: 64}
	p, err := offload.Solve(d, o)
	if err != nil {
		t.Fatal(err)
	}
	pes := offload.EstimateProfiles(d, p, o, 20e9)
	if len(pes) != 6 || pes[0].GPU.Name != "GTX 1060 6GB" || pes[5].GPU.Bandwidth != 3.35e12 {
		t.Fatalf("profiles: %+v", pes)
	}
	for _, pe := range pes {
		if pe.OwnErr != nil || pe.OwnPlan.TotalBytes > pe.GPU.Memory-offload.DefaultGPUReserve {
			t.Fatalf("%s: own plan %v", pe.GPU.Name, pe.OwnErr)
		}
		if (pe.This != nil) != (p.TotalBytes <= pe.GPU.Memory) {
			t.Fatalf("%s: this plan's estimate %v with %d bytes", pe.GPU.Name, pe.This != nil, p.TotalBytes)
		}
		t.Logf("%-14s own plan %s, hit %.3f, %.1f tok/s", pe.GPU.Name, offload.FormatBytes(pe.OwnPlan.TotalBytes), pe.OwnPlan.HitRate, pe.Own.TokensPerSec)
	}
	if pes[0].OwnPlan.HitRate > pes[1].OwnPlan.HitRate || pes[1].Own.TokensPerSec < pes[0].Own.TokensPerSec || pes[5].OwnPlan.HitRate != 1 {
		t.Fatalf("more memory and bandwidth should not be slower")
	}
}

func TestMeasureReadBandwidth(t *testing.T) {
	bw := offload.MeasureReadBandwidth(16<<20, 2)
	t.Logf("%.1f GB/s (a 16 MiB buffer may sit in cache)", bw/1e9)
	if !(bw > 1e8) {
		t.Fatalf("bandwidth %v", bw)
	}
	if offload.MeasureReadBandwidth(8, 1) != 0 {
		t.Fatalf("a tiny buffer should give 0")
	}
}
