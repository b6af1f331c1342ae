package predictor

import (
	"fmt"
	"math"
	"math/bits"
	"slices"

	"github.com/stokehq/stoke/models/dtype"
)

// Limits on what a profile (built or read) may hold. A sidecar that claims
// more is refused before anything is allocated.
const (
	// MaxLayers bounds the layer count of a profile or predictor.
	MaxLayers = 1 << 12
	// MaxWidth bounds Dim, FFN and Rank.
	MaxWidth = 1 << 20
	// MaxSamples bounds the reservoir size of one layer.
	MaxSamples = 1 << 24
)

// maxF16 is the largest finite binary16 value; larger magnitudes are
// stored as it rather than as infinity.
const maxF16 = 65504

// Profile is what the engine's profiler records while it runs text.
type Profile struct {
	Model      string // the model's sha or name
	Tokens     int    // tokens recorded (the most any layer has seen)
	MaxSamples int    // reservoir size per layer
	Seed       uint64 // reservoir seed
	Layers     []LayerProfile
}

// LayerProfile is one layer's record.
//
// X and A hold N samples: row j of X (X[j·Dim:(j+1)·Dim]) is an FFN input
// and row j of A (A[j·FFN:(j+1)·FFN]) its activation magnitudes |a_i| as
// binary16 bits, where a_i = act(gate_i·x) (times up_i·x for dReLU) for
// gated FFNs and act(up_i·x) for OPT. Magnitudes beyond the binary16 range
// are stored as its largest finite value.
type LayerProfile struct {
	Dim, FFN  int
	Count     []uint32  // per neuron: tokens where it fired (|a_i| > Threshold), saturating
	Threshold float32   // firing threshold on |a_i| used for Count (0 for ReLU models)
	X         []float32 // sampled FFN inputs, [N][Dim]
	A         []uint16  // their activation magnitudes as F16 bits, [N][FFN]
	N         int       // samples kept: min(Seen, MaxSamples)
	Seen      int       // tokens recorded for this layer
}

// NewProfile returns an empty profile of layers layers of the given widths
// keeping up to maxSamples samples per layer, with every buffer allocated
// so that Record allocates nothing. Firing thresholds start at 0; set
// Layers[l].Threshold before recording for non-ReLU models. It panics on
// sizes outside the package limits.
func NewProfile(layers, dim, ffn, maxSamples int, seed uint64) *Profile {
	if layers < 0 || layers > MaxLayers || dim < 1 || dim > MaxWidth || ffn < 1 || ffn > MaxWidth ||
		maxSamples < 0 || maxSamples > MaxSamples {
		panic(fmt.Sprintf("predictor: NewProfile(%d layers, dim %d, ffn %d, %d samples) is outside the limits", layers, dim, ffn, maxSamples))
	}
	p := &Profile{MaxSamples: maxSamples, Seed: seed, Layers: make([]LayerProfile, layers)}
	for l := range p.Layers {
		p.Layers[l] = LayerProfile{
			Dim:   dim,
			FFN:   ffn,
			Count: make([]uint32, ffn),
			X:     make([]float32, 0, maxSamples*dim),
			A:     make([]uint16, 0, maxSamples*ffn),
		}
	}
	return p
}

// Record adds one token's FFN input x (len Dim) and activations a (len FFN,
// signed or not) for layer: it counts the neurons with |a_i| > Threshold and
// offers the token to the layer's reservoir (Vitter's algorithm R).
//
// The reservoir's choice depends only on the seed and on how many tokens the
// layer has seen, so when every layer records every token the same tokens
// are kept in all layers. Record allocates nothing on a profile from
// NewProfile (one read from a file grows its buffers as it records). It is
// not safe for concurrent use. Wrong lengths panic.
func (p *Profile) Record(layer int, x []float32, a []float32) {
	l := &p.Layers[layer]
	if len(x) != l.Dim || len(a) != l.FFN {
		panic(fmt.Sprintf("predictor: Record layer %d: x has %d values, a %d; want %d and %d", layer, len(x), len(a), l.Dim, l.FFN))
	}
	thr := l.Threshold
	count := l.Count[:len(a)]
	for i, v := range a {
		if abs32(v) > thr && count[i] != math.MaxUint32 {
			count[i]++
		}
	}

	slot := -1
	switch {
	case l.Seen < p.MaxSamples:
		slot = l.Seen
	default:
		if j := reservoirDraw(p.Seed, uint64(l.Seen)); j < uint64(p.MaxSamples) {
			slot = int(j)
		}
	}
	l.Seen++
	if l.Seen > p.Tokens {
		p.Tokens = l.Seen
	}
	if slot < 0 {
		return
	}
	if slot == l.N {
		// Within NewProfile's capacity these allocate nothing; a profile
		// read from a file grows as it records.
		l.X = slices.Grow(l.X[:l.N*l.Dim], l.Dim)[:(l.N+1)*l.Dim]
		l.A = slices.Grow(l.A[:l.N*l.FFN], l.FFN)[:(l.N+1)*l.FFN]
		l.N++
	}
	copy(l.X[slot*l.Dim:(slot+1)*l.Dim], x)
	row := l.A[slot*l.FFN : (slot+1)*l.FFN]
	for i, v := range a {
		row[i] = f16Mag(v)
	}
}

// Rate returns each neuron's firing frequency, Count[i]/Seen (nil when the
// layer has seen no token).
func (l *LayerProfile) Rate() []float64 {
	if l.Seen == 0 {
		return nil
	}
	r := make([]float64, len(l.Count))
	for i, c := range l.Count {
		r[i] = float64(c) / float64(l.Seen)
	}
	return r
}

// reservoirDraw returns a uniform integer in [0, seen] for algorithm R, a
// pure function of the seed and the token's position.
func reservoirDraw(seed, seen uint64) uint64 {
	r := splitmix64(seed ^ splitmix64(seen+0x632be59bd9b4e019))
	hi, _ := bits.Mul64(r, seen+1)
	return hi
}

func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

func abs32(v float32) float32 { return math.Float32frombits(math.Float32bits(v) &^ (1 << 31)) }

// f16Mag returns |v| as binary16 bits, clamped to the largest finite half.
func f16Mag(v float32) uint16 {
	v = abs32(v)
	if v > maxF16 {
		v = maxF16
	}
	return dtype.F32ToF16(v)
}
