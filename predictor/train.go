package predictor

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/stokehq/stoke/kernels/cpu"
	"github.com/stokehq/stoke/models/dtype"
)

// TrainOptions configure Train. Zero fields take the defaults in brackets.
type TrainOptions struct {
	// Ranks are the candidate ranks, tried in ascending order; each is
	// capped at min(Dim, FFN). [64, 128, 256, 512, 1024]
	Ranks []int
	// RecallTarget is the recall on unseen tokens a predictor must reach.
	// [0.99]
	RecallTarget float64
	// CalibrationRecall is the recall on the validation samples that the
	// output threshold is set for. It is above RecallTarget so that recall
	// on unseen tokens, which scatters around the calibrated value, stays
	// at or above the target. [1 − (1 − RecallTarget)/2: 0.995 for 0.99]
	CalibrationRecall float64
	// Epochs is the most passes over the training samples per rank. [60]
	Epochs int
	// BatchSize is the mini-batch size. [128]
	BatchSize int
	// LR is Adam's initial learning rate. [0.01]
	LR float64
	// Decays is how many times the learning rate is divided by ten when
	// training stalls (Patience epochs without a better validation score,
	// the best weights restored each time); training of a rank ends at the
	// next stall. [2; negative: none]
	Decays int
	// WeightDecay is AdamW's decoupled weight decay on FC1 and FC2, per
	// unit of learning rate (0: none).
	WeightDecay float64
	// PosWeight is the weight of active labels in the binary cross-entropy.
	// [inactive/active on the layer's training samples, clamped to [1, 100]]
	PosWeight float64
	// HoldOut is the fraction of samples held out of training, split
	// evenly into validation samples (early stopping, rank choice, output
	// threshold) and test samples (the report). [0.2]
	HoldOut float64
	// Seed makes training deterministic: the same seed, profile and options
	// give the same predictor, whatever Threads is.
	Seed uint64
	// Threads is the number of threads of the matrix products. [all CPUs]
	Threads int
	// SparsityLoss is how much of the true sparsity a predictor may give up
	// and still count as reaching the target: a rank reaches it when, at
	// its output threshold, its predicted sparsity is at least
	// (1 − SparsityLoss)·(true sparsity). [0.05]
	SparsityLoss float64
	// Patience is how many epochs without a better validation score (the
	// sparsity at the calibration threshold) count as a stall. [3]
	Patience int
	// NoBias trains PowerInfer's exact form, fc2·ReLU(fc1·x) without
	// biases; the recall threshold then stays in Threshold instead of being
	// folded into B2.
	NoBias bool
	// KeepF32 keeps float32 weights; by default they are rounded to binary16
	// before the threshold is set, so the F16 sidecar is what was measured,
	// and the predictor returned holds them in F16 form too (W1, W2, read
	// by Predict) besides FC1 and FC2.
	KeepF32 bool
	// Quant, when Q8_0 or Q4_0, stores the weights in that type: a
	// predictor's cost per token is the bytes it reads, and Q8_0 reads
	// half of F16's, Q4_0 about a quarter. It applies to a layer whose
	// Dim and rank are whole 32-element blocks (the others stay F16).
	// The output threshold is then calibrated, and the report measured,
	// on the stored predictor as Predict runs it (quantized inputs,
	// integer dot products), so the recall it reports is the recall it
	// has. [F32, the zero Type: no quantization]
	Quant dtype.Type
	// LayerDone, if set, is called with each layer's report as soon as
	// the layer is trained.
	LayerDone func(LayerReport)
	// Progress, if set, is called after every epoch with the validation
	// recall at threshold 0 (the trained decision boundary).
	Progress func(layer, rank, epoch int, recall float64)
}

// LayerReport is what Train measured for one layer's chosen predictor, on
// its test samples (held out of training, early stopping, rank choice and
// threshold: an unbiased estimate), at its final threshold.
type LayerReport struct {
	Layer, Rank  int
	Recall       float64
	Precision    float64
	Sparsity     float64 // predicted inactive fraction
	TrueSparsity float64 // truly inactive fraction
	Epochs       int     // epochs trained at this rank
	// Reached tells whether the predictor reaches the target on the test
	// samples: recall ≥ RecallTarget at a sparsity ≥ (1 − SparsityLoss)·
	// TrueSparsity. The rank is chosen on the validation samples (the
	// smallest that reaches the target there); when none does, the one
	// with the best validation sparsity is kept.
	Reached bool
	// Recall0 is the validation recall at the trained decision boundary
	// (score ≥ 0, before the shift) of the kept epoch.
	Recall0 float64
	// Shift is the output threshold that makes validation recall reach
	// CalibrationRecall (folded into B2 when the predictor has biases).
	Shift float32
	// TrainSamples, ValSamples and HeldSamples count the training,
	// validation and test samples.
	TrainSamples, ValSamples, HeldSamples int
}

func (o *TrainOptions) withDefaults() (TrainOptions, error) {
	d := *o
	if len(d.Ranks) == 0 {
		d.Ranks = []int{64, 128, 256, 512, 1024}
	}
	if d.RecallTarget == 0 {
		d.RecallTarget = 0.99
	}
	if d.CalibrationRecall == 0 {
		d.CalibrationRecall = 1 - (1-d.RecallTarget)/2
	}
	if d.Epochs == 0 {
		d.Epochs = 60
	}
	switch {
	case d.Decays == 0:
		d.Decays = 2
	case d.Decays < 0:
		d.Decays = 0
	}
	if d.BatchSize == 0 {
		d.BatchSize = 128
	}
	if d.LR == 0 {
		d.LR = 0.01
	}
	if d.HoldOut == 0 {
		d.HoldOut = 0.2
	}
	if d.SparsityLoss == 0 {
		d.SparsityLoss = 0.05
	}
	if d.Patience == 0 {
		d.Patience = 3
	}
	switch {
	case !(d.RecallTarget > 0 && d.RecallTarget <= 1):
		return d, fmt.Errorf("predictor: recall target %v outside (0, 1]", d.RecallTarget)
	case !(d.CalibrationRecall > 0 && d.CalibrationRecall <= 1):
		return d, fmt.Errorf("predictor: calibration recall %v outside (0, 1]", d.CalibrationRecall)
	case d.Epochs < 1 || d.BatchSize < 1 || d.Patience < 1:
		return d, fmt.Errorf("predictor: epochs %d, batch size %d, patience %d must be positive", d.Epochs, d.BatchSize, d.Patience)
	case !(d.LR > 0) || math.IsInf(d.LR, 0):
		return d, fmt.Errorf("predictor: learning rate %v", d.LR)
	case d.WeightDecay < 0 || math.IsNaN(d.WeightDecay) || math.IsInf(d.WeightDecay, 0):
		return d, fmt.Errorf("predictor: weight decay %v", d.WeightDecay)
	case d.PosWeight < 0 || math.IsNaN(d.PosWeight) || math.IsInf(d.PosWeight, 0):
		return d, fmt.Errorf("predictor: positive weight %v", d.PosWeight)
	case !(d.SparsityLoss > 0 && d.SparsityLoss <= 1):
		return d, fmt.Errorf("predictor: sparsity loss %v outside (0, 1]", d.SparsityLoss)
	case !(d.HoldOut > 0 && d.HoldOut < 1):
		return d, fmt.Errorf("predictor: hold-out fraction %v outside (0, 1)", d.HoldOut)
	}
	for _, r := range d.Ranks {
		if r < 1 || r > MaxWidth {
			return d, fmt.Errorf("predictor: rank %d outside [1, %d]", r, MaxWidth)
		}
	}
	return d, nil
}

// Train fits one predictor per layer of p to the labels |a_i| >
// actThreshold[l] (nil: each layer's profile Threshold).
//
// Per layer the samples are split (seeded) into training, validation and
// test sets (see HoldOut). For each candidate rank in ascending order an
// MLP is trained with Adam on mini-batches (reshuffled every epoch) of the
// weighted binary cross-entropy
//
//	L = −Σ_i [ w·y_i·log σ(s_i) + (1 − y_i)·log(1 − σ(s_i)) ] / batch
//
// on standardised inputs. After each epoch the validation score is
// measured: the predicted sparsity at the threshold that makes validation
// recall reach CalibrationRecall. The epoch with the best score is kept;
// when the score stalls for Patience epochs the best weights are restored
// and the learning rate divided by ten, Decays times, and the next stall
// (or Epochs) ends the rank. The first rank whose validation sparsity is
// within SparsityLoss of the true sparsity is chosen; failing that, the
// rank with the best validation sparsity, the search ending at a rank
// that does worse than the one before it.
//
// The standardisation is then folded into FC1 and B1, the weights are
// rounded to binary16 (unless KeepF32), and the output threshold is set,
// less a small margin, to the largest value that keeps validation recall
// at CalibrationRecall and folded into B2. The reported metrics are
// measured on the predictor as returned, on the test samples, which
// played no part in training, stopping, the rank or the threshold.
//
// A layer whose samples hold a non-finite input, or too few samples to
// train on and hold out a validation and a test sample, is an error.
func Train(p *Profile, actThreshold []float32, o TrainOptions) (*Predictor, []LayerReport, error) {
	opt, err := o.withDefaults()
	if err != nil {
		return nil, nil, err
	}
	if err := p.check(); err != nil {
		return nil, nil, err
	}
	if len(p.Layers) == 0 {
		return nil, nil, errors.New("predictor: profile has no layers")
	}
	if actThreshold == nil {
		actThreshold = make([]float32, len(p.Layers))
		for i := range p.Layers {
			actThreshold[i] = p.Layers[i].Threshold
		}
	}
	if len(actThreshold) != len(p.Layers) {
		return nil, nil, fmt.Errorf("predictor: %d activation thresholds for %d layers", len(actThreshold), len(p.Layers))
	}
	pool := cpu.NewPool(opt.Threads)
	defer pool.Close()

	pred := &Predictor{Layers: make([]LayerPredictor, len(p.Layers)), ActThreshold: slices.Clone(actThreshold)}
	reports := make([]LayerReport, len(p.Layers))
	for l := range p.Layers {
		lp, rep, err := trainLayer(pool, p, l, actThreshold[l], &opt)
		if err != nil {
			return nil, nil, fmt.Errorf("predictor: layer %d: %w", l, err)
		}
		pred.Layers[l], reports[l] = lp, rep
		if opt.LayerDone != nil {
			opt.LayerDone(rep)
		}
	}
	return pred, reports, nil
}

// layerData is one layer's samples, split and prepared for training.
type layerData struct {
	d, f      int
	ntr       int
	xtr       []float32 // training inputs, standardised, ntr×d
	ytr       []uint8   // their labels, ntr×f
	val, test sampleSet
	mean, inv []float32 // standardisation: x' = (x − mean)·inv
	posWeight float32
	baseLogit []float32 // per neuron, logit of the training firing rate
	rankLimit int       // min(d, f)
}

// sampleSet is a set of held-out samples: raw inputs x, the same
// standardised (xs; validation only), labels y, n×f, and the set's true
// sparsity.
type sampleSet struct {
	n       int
	x, xs   []float32
	y       []uint8
	actTrue float64
}

func prepare(p *Profile, l int, actThr float32, o *TrainOptions) (*layerData, error) {
	lay := &p.Layers[l]
	n, d, f := lay.N, lay.Dim, lay.FFN
	nh := max(int(math.Round(o.HoldOut*float64(n))), 2)
	if n-nh < 1 {
		return nil, fmt.Errorf("%d samples are too few to train on and hold out a validation and a test sample", n)
	}
	for j, v := range lay.X[:n*d] {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return nil, fmt.Errorf("sample %d: input %d is %v", j/d, j%d, v)
		}
	}
	ld := &layerData{d: d, f: f, ntr: n - nh, rankLimit: min(d, f)}
	rng := rand.New(rand.NewPCG(o.Seed, uint64(l)))
	perm := rng.Perm(n)
	nv := (nh + 1) / 2
	val, test, train := perm[:nv], perm[nv:nh], perm[nh:]

	label := func(dst []uint8, j int) (pos int) {
		for i, v := range lay.A[j*f : (j+1)*f] {
			if dtype.F16ToF32(v&0x7fff) > actThr {
				dst[i] = 1
				pos++
			} else {
				dst[i] = 0
			}
		}
		return pos
	}

	// Standardisation from the training samples. Without biases B1 there
	// is nothing to fold a mean into, so inputs are only scaled.
	ld.mean, ld.inv = make([]float32, d), make([]float32, d)
	sum, sq := make([]float64, d), make([]float64, d)
	for _, j := range train {
		for c, v := range lay.X[j*d : (j+1)*d] {
			sum[c] += float64(v)
			sq[c] += float64(v) * float64(v)
		}
	}
	for c := range d {
		mu := sum[c] / float64(ld.ntr)
		if o.NoBias {
			mu = 0
		}
		v := sq[c]/float64(ld.ntr) - mu*mu
		sd := math.Sqrt(max(v, 0))
		if !(sd > 1e-12) || math.IsInf(sd, 0) {
			sd = 1
		}
		ld.mean[c], ld.inv[c] = float32(mu), float32(1/sd)
	}
	standardise := func(dst, x []float32) {
		for c, v := range x {
			dst[c] = (v - ld.mean[c]) * ld.inv[c]
		}
	}

	ld.xtr, ld.ytr = make([]float32, ld.ntr*d), make([]uint8, ld.ntr*f)
	rate := make([]float64, f)
	var pos int
	for k, j := range train {
		standardise(ld.xtr[k*d:(k+1)*d], lay.X[j*d:(j+1)*d])
		y := ld.ytr[k*f : (k+1)*f]
		pos += label(y, j)
		for i, v := range y {
			rate[i] += float64(v)
		}
	}
	held := func(idx []int, std bool) sampleSet {
		hs := sampleSet{n: len(idx), x: make([]float32, len(idx)*d), y: make([]uint8, len(idx)*f)}
		if std {
			hs.xs = make([]float32, len(idx)*d)
		}
		var pos int
		for k, j := range idx {
			copy(hs.x[k*d:(k+1)*d], lay.X[j*d:(j+1)*d])
			if std {
				standardise(hs.xs[k*d:(k+1)*d], lay.X[j*d:(j+1)*d])
			}
			pos += label(hs.y[k*f:(k+1)*f], j)
		}
		hs.actTrue = 1 - float64(pos)/float64(len(idx)*f)
		return hs
	}
	ld.val, ld.test = held(val, true), held(test, false)

	ld.baseLogit = make([]float32, f)
	for i := range f {
		r := min(max(rate[i]/float64(ld.ntr), 1e-4), 1-1e-4)
		ld.baseLogit[i] = float32(math.Log(r / (1 - r)))
	}
	ld.posWeight = float32(o.PosWeight)
	if o.PosWeight == 0 {
		neg := ld.ntr*f - pos
		w := 1.0
		if pos > 0 {
			w = float64(neg) / float64(pos)
		}
		ld.posWeight = float32(min(max(w, 1), 100))
	}
	return ld, nil
}

// b1Init is the initial hidden bias, about two standard deviations of a
// hidden unit's initial input.
const b1Init = 3

// mlp is a predictor under training: h = ReLU(fc1·x + b1), s = fc2·h + b2.
type mlp struct {
	d, r, f              int
	fc1, b1, fc2, b2     []float32 // b1, b2 nil without biases
	mfc1, mb1, mfc2, mb2 []float32 // Adam first moments
	vfc1, vb1, vfc2, vb2 []float32 // Adam second moments
}

func newMLP(ld *layerData, r int, bias bool, rng *rand.Rand) *mlp {
	d, f := ld.d, ld.f
	m := &mlp{d: d, r: r, f: f, fc1: make([]float32, r*d), fc2: make([]float32, f*r)}
	s1 := math.Sqrt(2 / float64(d))
	for i := range m.fc1 {
		m.fc1[i] = float32(rng.NormFloat64() * s1)
	}
	s2 := 0.5 / math.Sqrt(float64(r))
	for i := range m.fc2 {
		m.fc2[i] = float32(rng.NormFloat64() * s2)
	}
	if bias {
		// Hidden units start in their linear range (fc1·x has a standard
		// deviation of about √2 on standardised inputs): the predictor
		// starts close to a low-rank linear model, which generalises to
		// inputs unlike the training samples better than a half-silenced
		// start that training bends into memorising them.
		m.b1 = make([]float32, r)
		for j := range m.b1 {
			m.b1[j] = b1Init
		}
		m.b2 = slices.Clone(ld.baseLogit)
	}
	m.mfc1, m.vfc1 = make([]float32, len(m.fc1)), make([]float32, len(m.fc1))
	m.mfc2, m.vfc2 = make([]float32, len(m.fc2)), make([]float32, len(m.fc2))
	if bias {
		m.mb1, m.vb1 = make([]float32, r), make([]float32, r)
		m.mb2, m.vb2 = make([]float32, f), make([]float32, f)
	}
	return m
}

// params returns copies of the weights.
func (m *mlp) params() (fc1, b1, fc2, b2 []float32) {
	return slices.Clone(m.fc1), slices.Clone(m.b1), slices.Clone(m.fc2), slices.Clone(m.b2)
}

// setParams copies weights from params back in.
func (m *mlp) setParams(fc1, b1, fc2, b2 []float32) {
	copy(m.fc1, fc1)
	copy(m.b1, b1)
	copy(m.fc2, fc2)
	copy(m.b2, b2)
}

// forward computes s (n×f) and the hidden activations h (n×r) for n inputs x.
func (m *mlp) forward(pool *cpu.Pool, x []float32, n int, h, s []float32) {
	forward(pool, m.fc1, m.b1, m.fc2, m.b2, m.d, m.r, m.f, x, n, h, s)
}

func forward(pool *cpu.Pool, fc1, b1, fc2, b2 []float32, d, r, f int, x []float32, n int, h, s []float32) {
	h, s = h[:n*r], s[:n*f]
	matMulF32(pool, h, fc1, r, d, x, n)
	for b := range n {
		hb := h[b*r : (b+1)*r]
		if b1 != nil {
			cpu.AddInPlace(hb, b1)
		}
		cpu.ReLU(hb)
	}
	matMulF32(pool, s, fc2, f, r, h, n)
	if b2 != nil {
		for b := range n {
			cpu.AddInPlace(s[b*f:(b+1)*f], b2)
		}
	}
}

// trainer holds a rank's mini-batch buffers.
type trainer struct {
	pool                 *cpu.Pool
	xb, xbT, h, hT       []float32
	g, gT, fc2T, dh, dhT []float32
	gfc1, gb1, gfc2, gb2 []float32
	hh, sh               []float32 // held-out forward
	pos                  []float32 // held-out positive scores
	step                 int
}

func newTrainer(pool *cpu.Pool, ld *layerData, r, batch int) *trainer {
	d, f := ld.d, ld.f
	return &trainer{
		pool: pool,
		xb:   make([]float32, batch*d), xbT: make([]float32, batch*d),
		h: make([]float32, batch*r), hT: make([]float32, batch*r),
		g: make([]float32, batch*f), gT: make([]float32, batch*f),
		fc2T: make([]float32, f*r), dh: make([]float32, batch*r), dhT: make([]float32, batch*r),
		gfc1: make([]float32, r*d), gb1: make([]float32, r), gfc2: make([]float32, f*r), gb2: make([]float32, f),
		hh: make([]float32, max(ld.val.n, ld.test.n)*r), sh: make([]float32, max(ld.val.n, ld.test.n)*f),
	}
}

// transpose writes src (rows×cols) into dst (cols×rows).
func transpose(dst, src []float32, rows, cols int) {
	for i := range rows {
		row := src[i*cols : (i+1)*cols]
		for j, v := range row {
			dst[j*rows+i] = v
		}
	}
}

// batch runs one Adam step on the training samples idx.
func (t *trainer) batch(m *mlp, ld *layerData, idx []int, lr, wd float64) {
	d, r, f, n := m.d, m.r, m.f, len(idx)
	xb := t.xb[:n*d]
	for k, j := range idx {
		copy(xb[k*d:(k+1)*d], ld.xtr[j*d:(j+1)*d])
	}
	h, g := t.h[:n*r], t.g[:n*f]
	m.forward(t.pool, xb, n, h, g)

	// g = ∂L/∂s: σ(s) − y, positives weighted, averaged over the batch.
	inv := 1 / float32(n)
	pw := ld.posWeight * inv
	for k, j := range idx {
		y := ld.ytr[j*f : (j+1)*f]
		gs := g[k*f : (k+1)*f]
		for i, s := range gs {
			p := sigmoid(s)
			if y[i] != 0 {
				gs[i] = pw * (p - 1)
			} else {
				gs[i] = inv * p
			}
		}
	}
	if m.b2 != nil {
		clear(t.gb2)
		for k := range n {
			cpu.AddInPlace(t.gb2, g[k*f:(k+1)*f])
		}
	}
	// ∂L/∂fc2[f][r] = Σ_b g[b][f]·h[b][r]
	gT, hT := t.gT[:f*n], t.hT[:r*n]
	transpose(gT, g, n, f)
	transpose(hT, h, n, r)
	matMulF32(t.pool, t.gfc2, hT, r, n, gT, f)
	// ∂L/∂h[b][r] = Σ_f g[b][f]·fc2[f][r], through the ReLU
	transpose(t.fc2T, m.fc2, f, r)
	dh := t.dh[:n*r]
	matMulF32(t.pool, dh, t.fc2T, r, f, g, n)
	for i, v := range h {
		if v <= 0 {
			dh[i] = 0
		}
	}
	if m.b1 != nil {
		clear(t.gb1)
		for k := range n {
			cpu.AddInPlace(t.gb1, dh[k*r:(k+1)*r])
		}
	}
	// ∂L/∂fc1[r][d] = Σ_b dh[b][r]·x[b][d]
	dhT, xbT := t.dhT[:r*n], t.xbT[:d*n]
	transpose(dhT, dh, n, r)
	transpose(xbT, xb, n, d)
	matMulF32(t.pool, t.gfc1, xbT, d, n, dhT, r)

	t.step++
	c1 := 1 - math.Pow(adamB1, float64(t.step))
	c2 := 1 - math.Pow(adamB2, float64(t.step))
	a := float32(lr * math.Sqrt(c2) / c1)
	decay := float32(1 - lr*wd)
	adam(m.fc1, t.gfc1, m.mfc1, m.vfc1, a, decay)
	adam(m.fc2, t.gfc2, m.mfc2, m.vfc2, a, decay)
	if m.b1 != nil {
		adam(m.b1, t.gb1, m.mb1, m.vb1, a, 1)
		adam(m.b2, t.gb2, m.mb2, m.vb2, a, 1)
	}
}

const (
	adamB1  = 0.9
	adamB2  = 0.999
	adamEps = 1e-8
)

// adam applies one AdamW update with the bias-corrected step size a and
// the decay factor decay = 1 − lr·weight decay:
// m ← β1·m + (1−β1)·g, v ← β2·v + (1−β2)·g², w ← decay·w − a·m/(√v + ε).
func adam(w, g, m, v []float32, a, decay float32) {
	g, m, v = g[:len(w)], m[:len(w)], v[:len(w)]
	for i, gi := range g {
		mi := adamB1*m[i] + (1-adamB1)*gi
		vi := adamB2*v[i] + (1-adamB2)*gi*gi
		m[i], v[i] = mi, vi
		w[i] = decay*w[i] - a*mi/(float32(math.Sqrt(float64(vi)))+adamEps)
	}
}

func sigmoid(s float32) float32 {
	return float32(1 / (1 + math.Exp(-float64(s))))
}

// score runs the weights on the held-out set hs (x: its inputs, raw or
// standardised to match the weights) and returns the recall at s ≥ 0, the
// largest threshold whose recall reaches target, and the metrics at that
// threshold.
func (t *trainer) score(ld *layerData, hs *sampleSet, x []float32, fc1, b1, fc2, b2 []float32, r int, target float64) (recall0 float64, thr float32, m Metrics) {
	forward(t.pool, fc1, b1, fc2, b2, ld.d, r, ld.f, x, hs.n, t.hh, t.sh)
	s := t.sh[:hs.n*ld.f]
	recall0, thr = t.threshold(s, hs, target)
	return recall0, thr, confusionOf(hs, s, thr)
}

// threshold returns, for the scores s of hs's samples, the recall at
// s ≥ 0 and the largest threshold whose recall reaches target.
func (t *trainer) threshold(s []float32, hs *sampleSet, target float64) (recall0 float64, thr float32) {
	t.pos = t.pos[:0]
	var hit0 int
	for i, v := range s {
		if hs.y[i] != 0 {
			t.pos = append(t.pos, v)
			if v >= 0 {
				hit0++
			}
		}
	}
	np := len(t.pos)
	recall0 = 1
	if np > 0 {
		recall0 = float64(hit0) / float64(np)
		slices.Sort(t.pos)
		miss := min(int(math.Floor((1-target)*float64(np)+1e-9)), np-1)
		thr = t.pos[miss]
	}
	return recall0, thr
}

// storedScores runs lp as Predict does (its stored weights, its input
// quantization) on every sample of hs (raw inputs) and returns the
// scores, hs.n rows of FFN.
func (t *trainer) storedScores(lp *LayerPredictor, hs *sampleSet) []float32 {
	d, f := lp.Dim, lp.FFN
	for i := range hs.n {
		lp.scores(t.pool, hs.x[i*d:(i+1)*d], t.hh[:lp.Rank], t.sh[i*f:(i+1)*f], nil)
	}
	return t.sh[:hs.n*f]
}

// confusionOf counts the predictions s ≥ thr against hs's labels.
func confusionOf(hs *sampleSet, s []float32, thr float32) Metrics {
	var c confusion
	for i, v := range s {
		c.add(hs.y[i] != 0, v >= thr)
	}
	return c.metrics()
}

// fitRank trains one rank and returns the finished predictor, its report,
// its validation sparsity and whether that reaches the target.
func fitRank(pool *cpu.Pool, ld *layerData, l, r int, o *TrainOptions) (LayerPredictor, LayerReport, float64, bool) {
	rng := rand.New(rand.NewPCG(o.Seed^0x5eed_0f_9e3779b9, uint64(l)<<32|uint64(r)))
	m := newMLP(ld, r, !o.NoBias, rng)
	t := newTrainer(pool, ld, r, o.BatchSize)
	order := make([]int, ld.ntr)
	for i := range order {
		order[i] = i
	}
	var (
		bestSp, bestRec0     = -1.0, 0.0
		stale, decays        int
		bfc1, bb1, bfc2, bb2 []float32
	)
	lr := o.LR
	epochs := 0
	for epoch := 1; epoch <= o.Epochs; epoch++ {
		rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		for lo := 0; lo < len(order); lo += o.BatchSize {
			t.batch(m, ld, order[lo:min(lo+o.BatchSize, len(order))], lr, o.WeightDecay)
		}
		epochs = epoch
		rec0, _, met := t.score(ld, &ld.val, ld.val.xs, m.fc1, m.b1, m.fc2, m.b2, r, o.CalibrationRecall)
		if o.Progress != nil {
			o.Progress(l, r, epoch, rec0)
		}
		if met.Sparsity > bestSp+1e-4 {
			bestSp, bestRec0, stale = met.Sparsity, rec0, 0
			bfc1, bb1, bfc2, bb2 = m.params()
			continue
		}
		if stale++; stale < o.Patience {
			continue
		}
		if decays == o.Decays {
			break
		}
		// A stall: back to the best weights, with smaller steps.
		decays++
		lr /= 10
		stale = 0
		m.setParams(bfc1, bb1, bfc2, bb2)
	}
	valReached := bestSp >= (1-o.SparsityLoss)*ld.val.actTrue

	// Fold the standardisation: fc1·((x − μ)·inv) + b1 = (fc1·inv)·x + (b1 − fc1·(μ·inv)).
	for j := range r {
		row := bfc1[j*ld.d : (j+1)*ld.d]
		var shift float64
		for c := range row {
			shift += float64(row[c]) * float64(ld.mean[c]) * float64(ld.inv[c])
			row[c] *= ld.inv[c]
		}
		if bb1 != nil {
			bb1[j] -= float32(shift)
		}
	}
	lp := LayerPredictor{Dim: ld.d, Rank: r, FFN: ld.f, FC1: bfc1, FC2: bfc2, B1: bb1, B2: bb2}
	quant := (o.Quant == dtype.Q8_0 || o.Quant == dtype.Q4_0) && ld.d%32 == 0 && r%32 == 0
	halves := false
	switch {
	case quant:
		// FC1 and FC2 keep the stored values, for readers of the floats.
		w1, err1 := encode(o.Quant, bfc1)
		w2, err2 := encode(o.Quant, bfc2)
		if err := errors.Join(err1, err2); err != nil {
			panic("predictor: " + err.Error()) // whole blocks: checked above
		}
		lp.Type, lp.W1, lp.W2 = o.Quant, w1, w2
		_ = dtype.Dequantize(o.Quant, lp.W1, bfc1)
		_ = dtype.Dequantize(o.Quant, lp.W2, bfc2)
	case !o.KeepF32:
		h1, h2 := roundHalves(bfc1), roundHalves(bfc2)
		halves = h1 && h2
	}
	var thr float32
	if quant {
		// The stored predictor is the one the rank choice weighs.
		sv := t.storedScores(&lp, &ld.val)
		_, thr = t.threshold(sv, &ld.val, o.CalibrationRecall)
		bestSp = confusionOf(&ld.val, sv, thr).Sparsity
		valReached = bestSp >= (1-o.SparsityLoss)*ld.val.actTrue
	} else {
		_, thr, _ = t.score(ld, &ld.val, ld.val.x, bfc1, bb1, bfc2, bb2, r, o.CalibrationRecall)
	}
	// A margin, so that the positive the threshold sits on stays above it
	// through the fold's rounding and the mat-vec's summation order.
	thr -= 1e-3 * (1 + float32(math.Abs(float64(thr))))
	if bb2 != nil {
		for i := range bb2 {
			bb2[i] -= thr
		}
	} else {
		lp.Threshold = thr
	}
	// Measure the predictor as returned (the fold rounds) on the test set.
	ts := &ld.test
	var sts []float32
	if quant {
		sts = t.storedScores(&lp, ts)
	} else {
		forward(t.pool, lp.FC1, lp.B1, lp.FC2, lp.B2, ld.d, r, ld.f, ts.x, ts.n, t.hh, t.sh)
		sts = t.sh[:ts.n*ld.f]
	}
	met := confusionOf(ts, sts, lp.Threshold)
	lp.Measured = met
	if halves {
		// Predict reads the F16 form, as it will from the sidecar: half
		// the bytes of F32, the same values.
		lp.Type, lp.W1, lp.W2 = dtype.F16, f16Bytes(lp.FC1), f16Bytes(lp.FC2)
	}
	rep := LayerReport{
		Layer: l, Rank: r,
		Recall: met.Recall, Precision: met.Precision, Sparsity: met.Sparsity, TrueSparsity: ts.actTrue,
		Epochs: epochs, Recall0: bestRec0, Shift: thr,
		Reached:      met.Recall >= o.RecallTarget && met.Sparsity >= (1-o.SparsityLoss)*ts.actTrue,
		TrainSamples: ld.ntr, ValSamples: ld.val.n, HeldSamples: ts.n,
	}
	return lp, rep, bestSp, valReached
}

func trainLayer(pool *cpu.Pool, p *Profile, l int, actThr float32, o *TrainOptions) (LayerPredictor, LayerReport, error) {
	ld, err := prepare(p, l, actThr, o)
	if err != nil {
		return LayerPredictor{}, LayerReport{}, err
	}
	var ranks []int
	for _, r := range o.Ranks {
		ranks = append(ranks, min(r, ld.rankLimit))
	}
	slices.Sort(ranks)
	ranks = slices.Compact(ranks)
	// The first rank that reaches the target wins. Failing that, the rank
	// with the best validation sparsity is kept, and the search ends at a
	// rank that does worse than the one before it (a wider predictor that
	// generalises worse: more width will not help).
	var (
		best, prev = -1.0, -1.0
		lp         LayerPredictor
		rep        LayerReport
	)
	for _, r := range ranks {
		lpr, repr, sp, ok := fitRank(pool, ld, l, r, o)
		if ok || sp > best {
			best, lp, rep = sp, lpr, repr
		}
		if ok || sp < prev {
			break
		}
		prev = sp
	}
	return lp, rep, nil
}
