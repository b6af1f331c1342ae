package synth

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sort"

	"github.com/stokehq/stoke/models/dtype"
	"github.com/stokehq/stoke/models/gguf"
)

// Planted firing statistics.
//
// A ReLU neuron i fires for input x when its pre-activation z_i = g_i·x is
// positive (g_i: its gate row; its up row for OPT). Real ReLU models
// (OPT, ReluLLaMA) show a power law over neurons: a few per cent fire for
// most tokens, the rest rarely. Synthetic ReLU and dReLU models plant such
// a law: neuron i of layer l gets a target probability p_i (Firing), and
// its row is built so that P(z_i > 0) = p_i for the inputs the model sees.
//
// The plan. Each layer ranks its neurons by a seeded permutation. Rank
// k < H = round(HotFraction·ffn) is hot, with p falling linearly from
// 0.97 to 0.87. Cold rank j = k − H of C = ffn − H gets
//
//	p = MaxColdRate / (1 + (R − 1)·(j + ½)/C),
//
// a 1/rank tail from MaxColdRate (0.06) down to MaxColdRate/R, R chosen by
// bisection so that the cold mean is ColdRate.
//
// The bias. Llamas have no FFN biases, so the generator makes one: the
// residual stream's dimension 0 is an anchor that holds 1 for every token
// at every layer. Token embeddings have 1 there, and nothing writes to it
// (row 0 of attn_output and of ffn_down, element 0 of every ffn_down_t
// row, element 0 of OPT's position rows and output biases are 0). With
// the residual h = (1, r), RMSNorm and ffn_norm weight w = (W0, 1, …, 1),
// W0 = √Dim, the FFN input is x = w⊙h/rms(h), so
//
//	sign(z_i) = sign(W0·g_i0 + g_i,r·r)      (rms(h) > 0 drops out)
//
// If r ~ N(0, σ²I), g_i,r·r ~ N(0, σ²‖g_i,r‖²) and P(z_i > 0) =
// Φ(W0·g_i0 / (σ‖g_i,r‖)). The generator sets
//
//	g_i0 = τ_i·σ̂_l·‖g_i,r‖ / W0,   τ_i = Φ⁻¹(p_i),
//
// σ̂_l being ResidualStd's estimate of σ at layer l. The generator solves
// this for the row as stored, after quantization (see plantedMatrix.row),
// since W0 magnifies an error in g_i0. For OPT (LayerNorm)
// the same holds up to the mean subtraction, O(1/√Dim). To keep σ̂ honest
// across depth, planted models scale the residual writers (attn_output,
// ffn_down) by β = 1/√(2·Layers), so the residual stays dominated by the
// embedding: σ² ≈ 1 + β²·(¼(l+1) + ⅕l) ≤ 1.25 (OPT: + ¼ from positions).
//
// dReLU fires when gate and up are both positive: both get τ = Φ⁻¹(√p_i)
// (independent directions, so the product of the two is p_i). Llama ReLU
// plants the gate and zeroes up's element 0; OPT plants up.
//
// The low rank. A planted row is rank-limited: dimensions 32…Dim−1 are cut
// into m = basisRank contiguous groups G_1…G_m, one basis vector b (normal)
// is drawn per matrix, and g_ij = a_ik·b_j for j ∈ G_k, a_i ~ N(0, 1/Dim)ᵐ
// per row. Dimensions 1…31 get weight 0, so g_i0 is alone in its block of
// 32 and every block type stores it almost exactly (W0 would magnify an
// error). So g_i,r·r = Σ_k a_ik·(b_Gk·r), and
//
//	fc1 = [b_G1; −b_G1; …; b_Gm; −b_Gm; e_0]          (rank 2m+1 rows)
//	fc2_i = [a_i1, −a_i1, …, a_im, −a_im, W0·ĝ_i0 + δ_i]
//
// give fc2·ReLU(fc1·h) = W0·ĝ_i0 + g_i,r·r + δ_i (ReLU(t) − ReLU(−t) = t,
// h_0 = 1; ĝ is the row as stored): the planted predictor, on the
// residual h entering the FFN block (before ffn_norm, PowerInfer's llama
// convention), is exact up to the margin δ_i = 3·σ̂‖ĝ_i,r − g_i,r‖ +
// κ·σ̂‖g_i,r‖ (three standard deviations of what quantization adds, and
// κ = 0.02 for the rest), so it misses almost no firing neuron. dReLU's
// predictor follows the gate.
//
// Under LayerNorm (OPT), s·z_i = (u_i⊙w)·h − (S_i/Dim)·Σ_j h_j +
// s·(u_i·β + c_i) with s = std(h) ≈ σ̂, S_i = Σ_j (u_i⊙w)_j, β the norm's
// bias and c_i up's bias. The mean term is linear in h, so OPT's
// predictor has two more fc1 rows, ±(1, …, 1), weighted ∓S_i/Dim, and
// adds σ̂·(u_i·β + c_i) to the anchor weight; κ is 0.05 there.
const (
	DefaultHotFraction = 0.05
	DefaultColdRate    = 0.02
	MaxHotFraction     = 0.5
	// MaxColdRate is the firing rate of the most active cold neuron, so
	// ColdRate must stay below it.
	MaxColdRate = 0.06
	hotHigh     = 0.97
	hotLow      = 0.87
	// Estimated variance that one attention / FFN adds to the residual
	// per unit β², and that OPT's position rows (std optPosStd) add.
	attnVar   = 0.25
	ffnVar    = 0.2
	optPosStd = 0.5
	biasStd   = 0.02
	kappaRMS  = 0.02
	kappaLN   = 0.05
)

// shapeFamily fills Arch and Act and checks the sparse-FFN fields.
func shapeFamily(c *Config) error {
	if c.Arch == "" {
		c.Arch = "llama"
	}
	acts := map[string][]string{"llama": {"silu", "relu", "drelu"}, "bamboo": {"drelu"}, "opt": {"relu"}}
	allowed, ok := acts[c.Arch]
	if !ok {
		return fmt.Errorf("synth: unsupported architecture %q (want llama, bamboo or opt)", c.Arch)
	}
	if c.Act == "" {
		c.Act = allowed[0]
	}
	found := false
	for _, a := range allowed {
		found = found || a == c.Act
	}
	if !found {
		return fmt.Errorf("synth: %s cannot have activation %q (want one of %v)", c.Arch, c.Act, allowed)
	}
	if !c.planted() {
		if c.PowerInfer || c.HotFraction != 0 || c.ColdRate != 0 {
			return fmt.Errorf("synth: PowerInfer layout and planted firing need a ReLU or dReLU model (Act %q)", c.Act)
		}
		return nil
	}
	if c.HotFraction == 0 {
		c.HotFraction = DefaultHotFraction
	}
	if c.ColdRate == 0 {
		c.ColdRate = DefaultColdRate
	}
	if !(c.HotFraction > 0 && c.HotFraction <= MaxHotFraction) {
		return fmt.Errorf("synth: HotFraction %g is outside (0, %g]", c.HotFraction, MaxHotFraction)
	}
	if !(c.ColdRate > 0 && c.ColdRate < MaxColdRate) {
		return fmt.Errorf("synth: ColdRate %g is outside (0, %g)", c.ColdRate, MaxColdRate)
	}
	return nil
}

// planted reports whether c's FFNs get planted firing statistics.
func (c Config) planted() bool { return c.Act == "relu" || c.Act == "drelu" }

// basisRank is m, the rank of a planted gate (or up) matrix without its
// bias column.
func basisRank(c Config) int { return min(max(4, c.Dim/16), c.Dim-anchorBlock) }

// anchorBlock is the block that holds a planted row's anchor weight alone.
const anchorBlock = 32

// MinPlantedDim is the narrowest planted model.
const MinPlantedDim = 2 * anchorBlock

// PredictorRank is the width of the planted predictor: fc1 has this many
// rows of Dim, fc2 FFN rows of this many: 2m+1, and 2 more under
// LayerNorm.
func PredictorRank(c Config) int {
	if c.Arch == "opt" {
		return 2*basisRank(c) + 3
	}
	return 2*basisRank(c) + 1
}

// writerScale is β, the factor on attn_output and ffn_down of planted
// models (1 otherwise).
func writerScale(c Config) float64 {
	if !c.planted() {
		return 1
	}
	return 1 / math.Sqrt(2*float64(max(1, c.Layers)))
}

// anchorWeight is W0, ffn_norm's weight on the anchor dimension.
func anchorWeight(c Config) float64 { return math.Sqrt(float64(c.Dim)) }

// ResidualStd is σ̂, the estimated per-dimension standard deviation of the
// residual stream (anchor excluded) entering layer's FFN in a planted
// model, on which the planted biases are calibrated.
func ResidualStd(c Config, layer int) float64 {
	b2 := writerScale(c) * writerScale(c)
	v := 1 + b2*(attnVar*float64(layer+1)+ffnVar*float64(layer))
	if c.Arch == "opt" {
		v += optPosStd * optPosStd
	}
	return math.Sqrt(v)
}

// plan holds a config's firing probabilities by rank.
type plan struct {
	c      Config
	byRank []float64
}

func newPlan(c Config) *plan {
	n := c.FFN
	h := min(n, int(math.Round(c.HotFraction*float64(n))))
	p := &plan{c: c, byRank: make([]float64, n)}
	for k := range h {
		p.byRank[k] = hotHigh
		if h > 1 {
			p.byRank[k] = hotHigh - (hotHigh-hotLow)*float64(k)/float64(h-1)
		}
	}
	cold := p.byRank[h:]
	fill := func(r float64) float64 {
		var sum float64
		for j := range cold {
			cold[j] = MaxColdRate / (1 + (r-1)*(float64(j)+0.5)/float64(len(cold)))
			sum += cold[j]
		}
		return sum / float64(max(1, len(cold)))
	}
	lo, hi := 0.0, math.Log(1e12) // bisect on log R: the mean falls as R grows
	for range 100 {
		mid := (lo + hi) / 2
		if fill(math.Exp(mid)) > c.ColdRate {
			lo = mid
		} else {
			hi = mid
		}
	}
	fill(math.Exp((lo + hi) / 2))
	return p
}

// order returns layer's neurons by rank, in its seeded order.
func (p *plan) order(layer int) []int {
	rng := rand.New(rand.NewPCG(mix(p.c.Seed^mix(nameHash("stoke.synth.plan"))), mix(uint64(layer)+1)))
	return rng.Perm(p.c.FFN) // perm[k] is the neuron of rank k
}

// firing returns layer's probabilities indexed by neuron.
func (p *plan) firing(layer int) []float64 {
	out := make([]float64, p.c.FFN)
	for k, i := range p.order(layer) {
		out[i] = p.byRank[k]
	}
	return out
}

// Firing returns the planned firing probability of each neuron (indexed by
// neuron) of layer in a shaped planted config: the probability that the
// neuron's output is non-zero, for dReLU that gate and up are both
// positive. It returns nil for a SwiGLU config.
func Firing(c Config, layer int) []float64 {
	if !c.planted() || layer < 0 || layer >= c.Layers {
		return nil
	}
	return newPlan(c).firing(layer)
}

// Hot returns the hot neurons of layer (the HotFraction with the highest
// planned rates), sorted; nil for a SwiGLU config.
func Hot(c Config, layer int) []int {
	if !c.planted() || layer < 0 || layer >= c.Layers {
		return nil
	}
	p := newPlan(c)
	h := min(c.FFN, int(math.Round(c.HotFraction*float64(c.FFN))))
	hot := append([]int(nil), p.order(layer)[:h]...)
	sort.Ints(hot)
	return hot
}

// probit is Φ⁻¹, the standard normal quantile.
func probit(p float64) float64 { return math.Sqrt2 * math.Erfinv(2*p-1) }

// plantedMatrix describes one planted FFN matrix (gate, or up) of a layer:
// rows are neurons of Dim elements.
type plantedMatrix struct {
	name   string     // tensor name, keys the row streams
	typ    dtype.Type // the model's weight type
	b      []float64  // basis: b_j for every dimension, b_0 = 0
	start  []int      // group k is dimensions start[k] … start[k+1]−1
	tau    []float64  // by neuron
	sigma  float64    // σ̂ of the layer
	w0     float64    // W0
	invDim float64
}

func newPlanted(c Config, name string, layer int, tau []float64) *plantedMatrix {
	m := basisRank(c)
	pm := &plantedMatrix{name: name, typ: c.Type, tau: tau, sigma: ResidualStd(c, layer), w0: anchorWeight(c),
		b: make([]float64, c.Dim), start: make([]int, m+1), invDim: 1 / math.Sqrt(float64(c.Dim))}
	for k := range m + 1 {
		pm.start[k] = anchorBlock + k*(c.Dim-anchorBlock)/m
	}
	salt := nameHash(name + ".basis")
	rng := rand.New(rand.NewPCG(mix(c.Seed^mix(salt)), mix(salt)))
	for j := anchorBlock; j < c.Dim; j++ {
		pm.b[j] = rng.NormFloat64()
	}
	return pm
}

// rowScratch is one worker's buffers for plantedMatrix.row.
type rowScratch struct {
	a   []float64 // the row's coefficients, len m
	enc []byte    // the row as stored
	q   []float32 // the row as the model computes with it
}

func (pm *plantedMatrix) scratch() *rowScratch {
	n := len(pm.b)
	rb, _ := pm.typ.RowBytes(uint64(n))
	return &rowScratch{a: make([]float64, len(pm.start)-1), enc: make([]byte, rb), q: make([]float32, n)}
}

// row draws neuron i's coefficients from rng and writes its row to g, so
// that the row as stored (s.q, left by row) has
// q_0 = τ_i·σ̂·‖q_r‖/W0: the anchor weight is corrected, a few rounds of
// quantizing, for what quantization does to it and to the row's norm. It
// returns ‖g_r‖, the norm of the unquantized row without the anchor.
func (pm *plantedMatrix) row(rng *rand.Rand, i int, s *rowScratch, g []float32) (float64, error) {
	var sq float64
	for k := range s.a {
		s.a[k] = rng.NormFloat64() * pm.invDim
		for j := pm.start[k]; j < pm.start[k+1]; j++ {
			v := float32(s.a[k] * pm.b[j])
			g[j] = v
			sq += float64(v) * float64(v)
		}
	}
	clear(g[1:anchorBlock])
	norm := math.Sqrt(sq)
	g[0] = float32(pm.tau[i] * pm.sigma * norm / pm.w0)
	best, bestMiss := g[0], math.Inf(1)
	for round := 0; ; round++ {
		if err := encodeRow(pm.typ, g, s.enc); err != nil {
			return 0, err
		}
		if err := dtype.Dequantize(pm.typ, s.enc, s.q); err != nil {
			return 0, err
		}
		if round == 4 {
			return norm, nil // g is best, and s.q what it stores as
		}
		var qq float64
		for _, v := range s.q[1:] {
			qq += float64(v) * float64(v)
		}
		miss := pm.tau[i]*pm.sigma*math.Sqrt(qq)/pm.w0 - float64(s.q[0])
		if math.Abs(miss) < bestMiss {
			best, bestMiss = g[0], math.Abs(miss)
		}
		switch {
		case bestMiss <= 1e-6*pm.invDim && best == g[0]:
			return norm, nil
		case round == 3:
			g[0] = best
		default:
			g[0] += float32(miss)
		}
	}
}

// taus returns the τ of layer's planted matrices: gate, up (nil where the
// matrix is not planted).
func taus(c Config, p *plan, layer int) (gate, up []float64) {
	f := p.firing(layer)
	t := make([]float64, len(f))
	for i, pi := range f {
		if c.Act == "drelu" {
			pi = math.Sqrt(pi)
		}
		t[i] = probit(pi)
	}
	switch {
	case c.Arch == "opt":
		return nil, t
	case c.Act == "drelu":
		return t, t
	}
	return t, nil
}

// ConfigFromGGUF rebuilds the shaped Config a synthetic model was written
// from (its metadata holds every field), so that Firing, Hot and
// ResidualStd can be asked about a file.
func ConfigFromGGUF(f *gguf.File) (Config, error) {
	var c Config
	seed, ok := f.Uint(KeySeed)
	if !ok {
		return c, fmt.Errorf("synth: %s is missing: not a Stoke synthetic model", KeySeed)
	}
	c.Seed = seed
	c.Arch, _ = f.String("general.architecture")
	c.PowerInfer = f.Magic == gguf.MagicPowerInfer
	c.Act, _ = f.String(KeyActivation)
	c.HotFraction, _ = f.Float(KeyHotFraction)
	c.ColdRate, _ = f.Float(KeyColdRate)
	var err error
	get := func(key string) int {
		v, ok := f.Uint(c.Arch + "." + key)
		if !ok || v > math.MaxInt32 {
			err = fmt.Errorf("synth: %s.%s is missing or out of range", c.Arch, key)
		}
		return int(v)
	}
	c.Dim, c.Layers, c.FFN = get("embedding_length"), get("block_count"), get("feed_forward_length")
	c.Heads, c.Context = get("attention.head_count"), get("context_length")
	if c.Arch == "opt" {
		c.KVHeads, c.Context = c.Heads, c.Context-optPosOffset
	} else {
		c.KVHeads = get("attention.head_count_kv")
	}
	if err != nil {
		return c, err
	}
	emb, ok := f.Tensor("token_embd.weight")
	if !ok || len(emb.Shape) != 2 {
		return c, fmt.Errorf("synth: token_embd.weight is missing")
	}
	c.Vocab, c.Type = int(emb.Shape[1]), emb.Type
	params, _ := f.Uint(KeyParams)
	c.Params = int64(params)
	s, err := Shape(c)
	if err != nil {
		return c, err
	}
	if s.Params != c.Params {
		return c, fmt.Errorf("synth: the file says %d parameters, its shape has %d", c.Params, s.Params)
	}
	return s, nil
}
