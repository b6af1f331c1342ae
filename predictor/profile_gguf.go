package predictor

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/stokehq/stoke/models/dtype"
	"github.com/stokehq/stoke/models/gguf"
)

// The profile sidecar. Keys (arrays have one element per layer):
//
//	stoke.profile.version      uint32  1
//	stoke.profile.model        string  the model's sha or name
//	stoke.profile.tokens       uint64
//	stoke.profile.max_samples  uint64
//	stoke.profile.seed         uint64
//	stoke.profile.layer_count  uint32
//	stoke.profile.dim          [uint64]
//	stoke.profile.ffn          [uint64]
//	stoke.profile.samples      [uint64] N
//	stoke.profile.seen         [uint64]
//	stoke.profile.threshold    [float32]
//
// Tensors, per layer N (GGUF shapes, ne0 first):
//
//	blk.N.profile_count  I32 [FFN]     firing counts (uint32 bits)
//	blk.N.profile_x      F32 [Dim, N]  sampled inputs
//	blk.N.profile_a      F16 [FFN, N]  their activation magnitudes
const (
	keyProfileVersion    = "stoke.profile.version"
	keyProfileModel      = "stoke.profile.model"
	keyProfileTokens     = "stoke.profile.tokens"
	keyProfileMaxSamples = "stoke.profile.max_samples"
	keyProfileSeed       = "stoke.profile.seed"
	keyProfileLayers     = "stoke.profile.layer_count"
	keyProfileDim        = "stoke.profile.dim"
	keyProfileFFN        = "stoke.profile.ffn"
	keyProfileSamples    = "stoke.profile.samples"
	keyProfileSeen       = "stoke.profile.seen"
	keyProfileThreshold  = "stoke.profile.threshold"

	profileVersion = 1
)

// WriteGGUF writes the profile as a GGUF sidecar at path. Sample tensors
// are streamed, so writing needs no second copy of them.
func (p *Profile) WriteGGUF(path string) error {
	if err := p.check(); err != nil {
		return err
	}
	n := len(p.Layers)
	dims, ffns, samples, seen := make([]int, n), make([]int, n), make([]int, n), make([]int, n)
	thr := make([]float32, n)
	for i := range p.Layers {
		l := &p.Layers[i]
		dims[i], ffns[i], samples[i], seen[i], thr[i] = l.Dim, l.FFN, l.N, l.Seen, l.Threshold
	}
	w := gguf.NewWriter(3)
	w.AddKV(keyProfileVersion, gguf.Uint32(profileVersion))
	w.AddKV(keyProfileModel, gguf.String(p.Model))
	w.AddKV(keyProfileTokens, gguf.Uint64(uint64(p.Tokens)))
	w.AddKV(keyProfileMaxSamples, gguf.Uint64(uint64(p.MaxSamples)))
	w.AddKV(keyProfileSeed, gguf.Uint64(p.Seed))
	w.AddKV(keyProfileLayers, gguf.Uint32(uint32(n)))
	w.AddKV(keyProfileDim, uint64s(dims))
	w.AddKV(keyProfileFFN, uint64s(ffns))
	w.AddKV(keyProfileSamples, uint64s(samples))
	w.AddKV(keyProfileSeen, uint64s(seen))
	w.AddKV(keyProfileThreshold, gguf.Float32s(thr))
	for i := range p.Layers {
		l := &p.Layers[i]
		if err := w.AddTensor(fmt.Sprintf("blk.%d.profile_count", i), dtype.I32, []uint64{uint64(l.FFN)}, u32Bytes(l.Count)); err != nil {
			return err
		}
		x := l.X[:l.N*l.Dim]
		if err := w.AddTensorFunc(fmt.Sprintf("blk.%d.profile_x", i), dtype.F32, []uint64{uint64(l.Dim), uint64(l.N)}, f32Writer(x)); err != nil {
			return err
		}
		a := l.A[:l.N*l.FFN]
		if err := w.AddTensorFunc(fmt.Sprintf("blk.%d.profile_a", i), dtype.F16, []uint64{uint64(l.FFN), uint64(l.N)}, u16Writer(a)); err != nil {
			return err
		}
	}
	if err := gguf.WriteFile(path, w); err != nil {
		return fmt.Errorf("predictor: writing profile: %w", err)
	}
	return nil
}

// check validates a profile's shapes before it is written or trained on.
func (p *Profile) check() error {
	if len(p.Layers) > MaxLayers {
		return fmt.Errorf("predictor: profile has %d layers, over the limit of %d", len(p.Layers), MaxLayers)
	}
	if p.MaxSamples < 0 || p.MaxSamples > MaxSamples || p.Tokens < 0 {
		return fmt.Errorf("predictor: profile has MaxSamples %d, Tokens %d", p.MaxSamples, p.Tokens)
	}
	for i := range p.Layers {
		l := &p.Layers[i]
		switch {
		case l.Dim < 1 || l.Dim > MaxWidth || l.FFN < 1 || l.FFN > MaxWidth:
			return fmt.Errorf("predictor: profile layer %d: dim %d, ffn %d outside [1, %d]", i, l.Dim, l.FFN, MaxWidth)
		case len(l.Count) != l.FFN:
			return fmt.Errorf("predictor: profile layer %d: %d counts for %d neurons", i, len(l.Count), l.FFN)
		case l.N < 0 || l.N > MaxSamples || l.N > l.Seen:
			return fmt.Errorf("predictor: profile layer %d: %d samples of %d tokens seen", i, l.N, l.Seen)
		case len(l.X) < l.N*l.Dim || len(l.A) < l.N*l.FFN:
			return fmt.Errorf("predictor: profile layer %d: %d samples but %d input and %d activation values", i, l.N, len(l.X), len(l.A))
		}
	}
	return nil
}

// ReadProfile reads a profile sidecar written by WriteGGUF. Every count,
// shape and type is checked against the keys before it is used; the
// profile is copied out of the file, whose mapping is released.
func ReadProfile(path string) (*Profile, error) {
	f, err := gguf.Open(path)
	if err != nil {
		return nil, fmt.Errorf("predictor: %w", err)
	}
	defer f.Close()
	p, err := readProfile(f)
	if err != nil {
		return nil, fmt.Errorf("predictor: profile %s: %w", path, err)
	}
	return p, nil
}

func readProfile(f *gguf.File) (*Profile, error) {
	ver, ok := f.Uint(keyProfileVersion)
	if !ok {
		return nil, fmt.Errorf("not a Stoke profile (no %s)", keyProfileVersion)
	}
	if ver != profileVersion {
		return nil, fmt.Errorf("profile version %d, this build reads %d", ver, profileVersion)
	}
	p := &Profile{}
	p.Model, _ = f.String(keyProfileModel)
	var err error
	if p.Tokens, err = uintKey(f, keyProfileTokens, math.MaxInt64); err != nil {
		return nil, err
	}
	if p.MaxSamples, err = uintKey(f, keyProfileMaxSamples, MaxSamples); err != nil {
		return nil, err
	}
	seed, ok := f.Uint(keyProfileSeed)
	if !ok {
		return nil, fmt.Errorf("key %q is missing", keyProfileSeed)
	}
	p.Seed = seed
	n, err := uintKey(f, keyProfileLayers, MaxLayers)
	if err != nil {
		return nil, err
	}
	dims, err := intArray(f, keyProfileDim, n, MaxWidth)
	if err != nil {
		return nil, err
	}
	ffns, err := intArray(f, keyProfileFFN, n, MaxWidth)
	if err != nil {
		return nil, err
	}
	samples, err := intArray(f, keyProfileSamples, n, uint64(p.MaxSamples))
	if err != nil {
		return nil, err
	}
	seen, err := intArray(f, keyProfileSeen, n, math.MaxInt64)
	if err != nil {
		return nil, err
	}
	thr, err := floatArray(f, keyProfileThreshold, n)
	if err != nil {
		return nil, err
	}
	p.Layers = make([]LayerProfile, n)
	for i := range p.Layers {
		dim, ffn, ns := dims[i], ffns[i], samples[i]
		if dim < 1 || ffn < 1 {
			return nil, fmt.Errorf("layer %d: dim %d, ffn %d", i, dim, ffn)
		}
		if ns > seen[i] {
			return nil, fmt.Errorf("layer %d: %d samples of %d tokens seen", i, ns, seen[i])
		}
		if seen[i] > p.Tokens {
			return nil, fmt.Errorf("layer %d: %d tokens seen, more than the profile's %d", i, seen[i], p.Tokens)
		}
		l := &p.Layers[i]
		l.Dim, l.FFN, l.N, l.Seen, l.Threshold = dim, ffn, ns, seen[i], thr[i]

		// Each tensor's size is checked against its shape and the file, so
		// the allocations below are bounded by the file's size.
		tc, cb, err := tensor(f, fmt.Sprintf("blk.%d.profile_count", i), uint64(ffn))
		if err != nil {
			return nil, err
		}
		if tc.Type != dtype.I32 {
			return nil, fmt.Errorf("tensor %q is %s, want I32", tc.Name, tc.Type)
		}
		l.Count = make([]uint32, ffn)
		for j := range l.Count {
			l.Count[j] = binary.LittleEndian.Uint32(cb[4*j:])
		}

		tx, xb, err := tensor(f, fmt.Sprintf("blk.%d.profile_x", i), uint64(dim), uint64(ns))
		if err != nil {
			return nil, err
		}
		if tx.Type != dtype.F32 {
			return nil, fmt.Errorf("tensor %q is %s, want F32", tx.Name, tx.Type)
		}
		l.X = make([]float32, ns*dim)
		for j := range l.X {
			l.X[j] = math.Float32frombits(binary.LittleEndian.Uint32(xb[4*j:]))
		}

		ta, ab, err := tensor(f, fmt.Sprintf("blk.%d.profile_a", i), uint64(ffn), uint64(ns))
		if err != nil {
			return nil, err
		}
		if ta.Type != dtype.F16 {
			return nil, fmt.Errorf("tensor %q is %s, want F16", ta.Name, ta.Type)
		}
		l.A = make([]uint16, ns*ffn)
		for j := range l.A {
			l.A[j] = binary.LittleEndian.Uint16(ab[2*j:])
		}
	}
	return p, nil
}
