package cpu_test

import (
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stokehq/stoke/kernels/cpu"
	"github.com/stokehq/stoke/models/dtype"
)

// The sparse FFN against the dense one on a 7B-shaped layer (Llama-2-7B:
// dim 4096, FFN 11008, gated: gate, up, down), kernels only:
//
//	dense:  MatVec gate, MatVec up (11008×4096), MatVec down (4096×11008)
//	sparse: MatVecRows gate, MatVecRows up over the active neurons, then
//	        AxpyRows over the neuron-major down (11008 rows of 4096)
//
// The neuron-major down is stored as the engine stores it
// (engine.neuronMajorDown): F16 stays F16, a Q4_0 down becomes Q8_0 (a
// quantized matrix cannot be transposed without re-encoding); a Q4_0
// layer with an F16 neuron-major down is timed too, and one with a Q4_0
// neuron-major down, as PowerInfer's GGUF files store ffn_down_t in the
// model's type. Weights are random (speed does not depend on the values)
// and held, as the engine holds a model read into memory, in transparent
// huge pages (weightBytes). Each iteration uses the next of sparseSets
// random active sets, and every timed product starts with cold caches
// (coldCaches): a decode reads every other layer's weights between two
// uses of this one's.
//
// The predictor, fc2·ReLU(fc1·x) with fc1 rank×4096 and fc2 11008×rank,
// plus the scan for scores ≥ threshold, is timed at the ranks Train tries,
// in the forms the engine computes (predictor7B).
//
//	go test ./kernels/cpu -run '^$' -bench 'SparseFFN|Predictor7B'
//	go test ./kernels/cpu -run TestSparseFFNTable -sparse-table -v
//
// The second prints one table from interleaved runs (dense, every active
// fraction and every predictor rank timed round after round, medians
// kept), which is what to compare on a shared machine.

const (
	ffn7BDim   = 4096
	ffn7BFFN   = 11008
	sparseSets = 16
)

var (
	sparseFractions = []float64{0.5, 0.25, 0.10, 0.05}
	predictorRanks  = []int{64, 128, 256, 512, 1024}
	sparseTable     = flag.Bool("sparse-table", false, "TestSparseFFNTable: print the 7B-layer sparse FFN and predictor table")
)

// ffnLayer is one FFN layer's weights in a type.
type ffnLayer struct {
	t, downT        dtype.Type // gate/up/down type, neuron-major down type
	gate, up, down  []byte
	packed          [3][]byte // gate, up, down packed by cpu.PackX16 (nil where t has no packed layout)
	downNeuronMajor []byte
	x, h, hu, out   []float32
	axpy            cpu.AxpyRows
	fracSets        map[float64][][]int32 // per fraction, sparseSets active sets
	hotSets         map[float64][][]int32 // the same, drawn by hotFirstSets
}

// randomRows returns rows rows of cols random elements of type t, built
// block by block (finite scales, uniform quants) without the slow encoder.
func randomRows(rng *rand.Rand, t dtype.Type, rows, cols int) []byte {
	rb, err := t.RowBytes(uint64(cols))
	if err != nil {
		panic(err)
	}
	out := weightBytes(rows * int(rb))
	half := func(v float32) (byte, byte) {
		h := dtype.F32ToF16(v)
		return byte(h), byte(h >> 8)
	}
	switch t {
	case dtype.F16:
		for i := 0; i < len(out); i += 2 {
			out[i], out[i+1] = half(float32(rng.NormFloat64() * 0.02))
		}
	case dtype.F32:
		for i := 0; i < len(out); i += 4 {
			b := math.Float32bits(float32(rng.NormFloat64() * 0.02))
			out[i], out[i+1], out[i+2], out[i+3] = byte(b), byte(b>>8), byte(b>>16), byte(b>>24)
		}
	case dtype.Q4_0, dtype.Q8_0:
		bs := t.TypeSize()
		for i := 0; i < len(out); i += bs {
			out[i], out[i+1] = half(0.001 + 0.002*rng.Float32())
			for j := i + 2; j < i+bs; j++ {
				out[j] = byte(rng.Uint32())
			}
		}
	default:
		panic("randomRows: " + t.String())
	}
	return out
}

// sparseBenchLayer is a layer type and the type of its neuron-major down.
type sparseBenchLayer struct{ t, downT dtype.Type }

func (c sparseBenchLayer) String() string {
	if c.downT == dtype.Q8_0 || c.downT == c.t && c.t != dtype.Q4_0 {
		return c.t.String()
	}
	return c.t.String() + "-down" + c.downT.String()
}

// sparseBenchLayers are the layers timed: Q4_0 and F16 as the engine
// stores their neuron-major downs (Q8_0, F16), Q4_0 with an F16
// neuron-major down, for comparison, and Q4_0 with a Q4_0 neuron-major
// down (PowerInfer's layout).
var sparseBenchLayers = []sparseBenchLayer{{dtype.Q4_0, dtype.Q8_0}, {dtype.F16, dtype.F16}, {dtype.Q4_0, dtype.F16}, {dtype.Q4_0, dtype.Q4_0}}

var ffnLayers = map[sparseBenchLayer]*ffnLayer{}

// layer7B returns (building once) a 7B-shaped FFN layer.
func layer7B(c sparseBenchLayer) *ffnLayer {
	if l, ok := ffnLayers[c]; ok {
		return l
	}
	t := c.t
	rng := rand.New(rand.NewPCG(7, uint64(t)))
	l := &ffnLayer{t: t, downT: c.downT}
	l.gate = randomRows(rng, t, ffn7BFFN, ffn7BDim)
	l.up = randomRows(rng, t, ffn7BFFN, ffn7BDim)
	l.down = randomRows(rng, t, ffn7BDim, ffn7BFFN)
	l.downNeuronMajor = randomRows(rng, l.downT, ffn7BFFN, ffn7BDim)
	if cpu.X16Pays(t) {
		for i, m := range [][]byte{l.gate, l.up, l.down} {
			rows, cols := ffn7BFFN, ffn7BDim
			if i == 2 {
				rows, cols = cols, rows
			}
			l.packed[i] = append(weightBytes(len(m))[:0], m...)
			cpu.PackX16(t, l.packed[i], rows, cols)
		}
	}
	l.x = make([]float32, ffn7BDim)
	for i := range l.x {
		l.x[i] = float32(rng.NormFloat64())
	}
	l.h, l.hu, l.out = make([]float32, ffn7BFFN), make([]float32, ffn7BFFN), make([]float32, ffn7BDim)
	l.fracSets = map[float64][][]int32{}
	for _, f := range sparseFractions {
		k := int(math.Round(f * ffn7BFFN))
		for range sparseSets {
			perm := rng.Perm(ffn7BFFN)[:k]
			idx := make([]int32, k)
			for i, v := range perm {
				idx[i] = int32(v)
			}
			slices.Sort(idx)
			l.fracSets[f] = append(l.fracSets[f], idx)
		}
	}
	l.hotSets = map[float64][][]int32{}
	for _, f := range sparseFractions {
		l.hotSets[f] = hotFirstSets(rng, f, ffn7BFFN, sparseSets)
	}
	ffnLayers[c] = l
	return l
}

// hotFirstSets draws sets sorted active sets of a layer of n neurons
// numbered hot first (stoke reorder), neuron i firing with probability
// min(1, c/(i+1)), a 1/rank law, c set so that the mean active fraction
// is f. At f = 10% the first 26% of the neurons hold 72% of the firings
// (PowerInfer measured 80% for OPT-30B), at 50% they hold 50%.
func hotFirstSets(rng *rand.Rand, f float64, n, sets int) [][]int32 {
	mean := func(c float64) float64 {
		s := 0.0
		for i := range n {
			s += min(1, c/float64(i+1))
		}
		return s / float64(n)
	}
	lo, hi := 0.0, float64(n)
	for range 60 {
		if c := (lo + hi) / 2; mean(c) > f {
			hi = c
		} else {
			lo = c
		}
	}
	out := make([][]int32, sets)
	for k := range out {
		for i := range n {
			if rng.Float64() < lo/float64(i+1) {
				out[k] = append(out[k], int32(i))
			}
		}
	}
	return out
}

// coldCaches reads coldBytes of other memory on p's workers, so that the
// next product finds none of its weights in the caches, as in a decode,
// which reads every other layer's weights between two uses of one layer's
// FFN. Without it, a sparse product timed over and over finds much of the
// layer's rows in the last-level cache, which holds a good part of a
// sparse product's rows but none of a dense one's: on the development
// machine that made the sparse Q4_0 FFN at 10% active look 20–25% faster
// than it is. Read on the pool, the workers are still spinning when the
// timed product starts, as in a decode.
func coldCaches(p *cpu.Pool) {
	coldOnce.Do(func() {
		buf := make([]uint64, coldBytes/8)
		for i := range buf {
			buf[i] = uint64(i)
		}
		coldTask = &sumBufTask{buf: buf, sums: make([][8]uint64, p.Threads())}
	})
	if len(coldTask.sums) < p.Threads() {
		coldTask.sums = make([][8]uint64, p.Threads())
	}
	p.ParallelWorkers(len(coldTask.buf), 1<<16, coldTask)
}

// coldBytes is more than twice the last-level cache of a CPU a
// benchmark's two threads can use (32 MiB per Zen core complex).
const coldBytes = 128 << 20

var (
	coldOnce sync.Once
	coldTask *sumBufTask
)

func (l *ffnLayer) dense(p *cpu.Pool) {
	p.MatVec(l.h, l.gate, l.t, ffn7BFFN, ffn7BDim, l.x)
	p.MatVec(l.hu, l.up, l.t, ffn7BFFN, ffn7BDim, l.x)
	p.MatVec(l.out, l.down, l.t, ffn7BDim, ffn7BFFN, l.h)
}

// densePacked is dense on the packed matrices, as the engine runs a dense
// FFN it packed at load (LoadOptions.PackQ4): gate and up in one set.
func (l *ffnLayer) densePacked(p *cpu.Pool) {
	p.MatMulPackedSet(l.t, []cpu.Q4x16Product{{Dst: l.h, W: l.packed[0], Rows: ffn7BFFN}, {Dst: l.hu, W: l.packed[1], Rows: ffn7BFFN}}, ffn7BDim, l.x, 1)
	p.MatMulPackedSet(l.t, []cpu.Q4x16Product{{Dst: l.out, W: l.packed[2], Rows: ffn7BDim}}, ffn7BFFN, l.h, 1)
}

func (l *ffnLayer) sparse(p *cpu.Pool, idx []int32) {
	l.sparseRows(p, idx)
	l.sparseDown(p, idx)
}

// sparseRows is the sparse FFN's gate and up products.
func (l *ffnLayer) sparseRows(p *cpu.Pool, idx []int32) {
	n := len(idx)
	p.MatVecRows(l.h[:n], l.gate, l.t, ffn7BDim, idx, l.x)
	p.MatVecRows(l.hu[:n], l.up, l.t, ffn7BDim, idx, l.x)
}

// sparseDown is the sparse FFN's down product.
func (l *ffnLayer) sparseDown(p *cpu.Pool, idx []int32) {
	l.axpy.Do(p, l.out, l.downNeuronMajor, l.downT, ffn7BDim, idx, l.h[:len(idx)])
}

// predictor7B is a predictor for the 7B layer: fc1 rank×4096 and fc2
// 11008×rank in type t, computed as predictor.LayerPredictor.Predict
// computes it: fc2 rank-major (fc2T, rank rows of 11008, the rows whose
// ReLU output is 0 left out by AxpyRows: predictor.RankMajor, or
// Quantized for the block types), or, with rows set, fc2 in its stored
// layout (a block-quantized sidecar from train-predictor --type).
type predictor7B struct {
	t          dtype.Type
	rank       int
	rows       bool
	fc1, fc2   []byte // fc2: 11008×rank, or rank×11008 (rank-major)
	h, s       []float32
	idx, ranks []int32
	axpy       cpu.AxpyRows
}

func newPredictor7B(t dtype.Type, rank int, rows bool) *predictor7B {
	rng := rand.New(rand.NewPCG(uint64(rank), uint64(t)))
	pr := &predictor7B{t: t, rank: rank, rows: rows,
		fc1: randomRows(rng, t, rank, ffn7BDim), h: make([]float32, rank), s: make([]float32, ffn7BFFN),
		idx: make([]int32, ffn7BFFN), ranks: make([]int32, rank)}
	if rows {
		pr.fc2 = randomRows(rng, t, ffn7BFFN, rank)
	} else {
		pr.fc2 = randomRows(rng, t, rank, ffn7BFFN)
	}
	for i := range pr.ranks {
		pr.ranks[i] = int32(i)
	}
	return pr
}

func (pr *predictor7B) String() string {
	if pr.rows {
		return fmt.Sprintf("pred %s r%d rows", pr.t, pr.rank)
	}
	return fmt.Sprintf("pred %s r%d", pr.t, pr.rank)
}

// run is LayerPredictor.Predict on the stored form: fc1's mat-vec, the
// ReLU (about half of h is 0 here, as in a trained predictor), fc2's
// product and the scan for scores ≥ 0, branch-free as Predict's.
func (pr *predictor7B) run(p *cpu.Pool, x []float32) int {
	p.MatVec(pr.h, pr.fc1, pr.t, pr.rank, ffn7BDim, x)
	cpu.ReLU(pr.h)
	if pr.rows {
		p.MatVec(pr.s, pr.fc2, pr.t, ffn7BFFN, pr.rank, pr.h)
	} else {
		pr.axpy.Do(p, pr.s, pr.fc2, pr.t, ffn7BFFN, pr.ranks, pr.h)
	}
	k := 0
	for i, v := range pr.s {
		pr.idx[k] = int32(i)
		if v >= 0 {
			k++
		}
	}
	return k
}

// predictorForms are the predictors timed: every type rank-major, as the
// engine computes the F32 and F16 ones and those re-encoded by
// --predictor-type, and the block types in their stored layout too.
func predictorForms(r int) []*predictor7B {
	var out []*predictor7B
	for _, t := range []dtype.Type{dtype.F32, dtype.F16, dtype.Q8_0, dtype.Q4_0} {
		out = append(out, newPredictor7B(t, r, false))
		if t.BlockSize() > 1 {
			out = append(out, newPredictor7B(t, r, true))
		}
	}
	return out
}

func BenchmarkPredictor7B(b *testing.B) {
	p := cpu.NewPool(2)
	defer p.Close()
	x := layer7B(sparseBenchLayers[1]).x
	for _, r := range predictorRanks {
		for _, pr := range predictorForms(r) {
			name := fmt.Sprintf("%s/rank=%d", pr.t, r)
			if pr.rows {
				name += "/rows"
			}
			b.Run(name, func(b *testing.B) {
				for b.Loop() {
					b.StopTimer()
					coldCaches(p)
					b.StartTimer()
					pr.run(p, x)
				}
			})
		}
	}
}

// TestSparseFFNTable prints the speed-up of the sparse FFN over the dense
// one per active fraction (goal: ≥ 0.8/fraction down to 10%), next to the
// ratio of the bytes the two read ("bytes": the speed-up if both ran at
// the same bandwidth; a Q8_0 neuron-major down is twice the Q4_0 down's
// bytes, so a Q4_0 layer with one cannot reach 0.8/fraction, while
// PowerInfer's Q4_0 down_t reads as many bytes per neuron as the dense
// down), the speed-up over the dense FFN on packed matrices ("vs packed":
// the dense FFN the engine runs on a model it packed at load, for the
// types cpu.X16Pays packs), the speed-up when the active sets follow a
// power law over neurons numbered hot first ("hot-first": hotFirstSets,
// the sets a model renumbered by stoke reorder sees, where the uniform
// sets of the other columns are the worst case, no locality at all), and
// the predictor's time as a share of the dense FFN (goal: ≤ 10%), for
// Q4_0 and F16 layers on 2 threads. It fails nothing: it measures.
func TestSparseFFNTable(t *testing.T) {
	if !*sparseTable {
		t.Skip("run with -sparse-table")
	}
	p := cpu.NewPool(2)
	defer p.Close()
	const rounds, reps = 9, 4
	type job struct {
		name string
		run  func(rep int)
	}
	median := func(v []time.Duration) time.Duration {
		v = slices.Clone(v)
		sort.Slice(v, func(i, j int) bool { return v[i] < v[j] })
		return v[len(v)/2]
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "7B FFN layer (dim %d, ffn %d), 2 threads, median of %d rounds × %d reps\n", ffn7BDim, ffn7BFFN, rounds, reps)
	for li, c := range sparseBenchLayers {
		l := layer7B(c)
		jobs := []job{{"dense", func(int) { l.dense(p) }}}
		for _, f := range sparseFractions {
			sets := l.fracSets[f]
			jobs = append(jobs,
				job{fmt.Sprintf("%g%%", 100*f), func(rep int) { l.sparse(p, sets[rep%len(sets)]) }},
				job{"rows", func(rep int) { l.sparseRows(p, sets[rep%len(sets)]) }},
				job{"down", func(rep int) { l.sparseDown(p, sets[rep%len(sets)]) }},
				job{"hot", func(rep int) { l.sparse(p, l.hotSets[f][rep%sparseSets]) }})
		}
		if l.packed[0] != nil {
			jobs = append(jobs, job{"dense packed", func(int) { l.densePacked(p) }})
		}
		for _, r := range predictorRanks {
			if li >= 2 {
				break // the same dense FFN as the first layer
			}
			for _, pr := range predictorForms(r) {
				jobs = append(jobs, job{pr.String(), func(int) { pr.run(p, l.x) }})
			}
		}
		times := make([][]time.Duration, len(jobs))
		rep := 0
		for range rounds {
			for j, jb := range jobs {
				var d time.Duration
				for range reps {
					coldCaches(p)
					t0 := time.Now()
					jb.run(rep)
					d += time.Since(t0)
					rep++
				}
				times[j] = append(times[j], d/reps)
			}
		}
		dense := median(times[0])
		title := fmt.Sprintf("%s (neuron-major down %s)", c.t, l.downT)
		if c.t == dtype.Q4_0 && c.downT == dtype.Q4_0 {
			title = "Q4_0 (Q4_0 down_t, PowerInfer layout)"
		}
		pj := 1 + 4*len(sparseFractions) // the dense packed job, when there is one
		densePacked := time.Duration(0)
		if l.packed[0] != nil {
			densePacked = median(times[pj])
			fmt.Fprintf(&sb, "%s: dense FFN %.2f ms, %.2f ms packed (cpu.PackX16, as the engine runs a dense FFN)\n", title, float64(dense)/1e6, float64(densePacked)/1e6)
		} else {
			fmt.Fprintf(&sb, "%s: dense FFN %.2f ms\n", title, float64(dense)/1e6)
		}
		fmt.Fprintf(&sb, "  %-8s %9s %10s %10s %10s %14s %14s %12s %12s\n", "active", "sparse ms", "speed-up", "goal", "bytes", "gate+up ms", "down ms", "vs packed", "hot-first")
		denseBytes := float64(len(l.gate) + len(l.up) + len(l.down))
		rowBytes := float64(len(l.gate)+len(l.up)+len(l.downNeuronMajor)) / ffn7BFFN // one neuron's rows
		for j, f := range sparseFractions {
			m := median(times[1+4*j])
			n := float64(len(l.fracSets[f][0]))
			vs := "-"
			if densePacked > 0 {
				vs = fmt.Sprintf("%.2f×", float64(densePacked)/float64(m))
			}
			fmt.Fprintf(&sb, "  %-8s %9.2f %9.2f× %9.1f× %9.2f× %14.2f %14.2f %12s %11.2f×\n", jobs[1+4*j].name, float64(m)/1e6, float64(dense)/float64(m), 0.8/f,
				denseBytes/(n*rowBytes), float64(median(times[2+4*j]))/1e6, float64(median(times[3+4*j]))/1e6, vs, float64(dense)/float64(median(times[4+4*j])))
		}
		if densePacked > 0 {
			pj++
		}
		if len(jobs) > pj {
			fmt.Fprintf(&sb, "  %-22s %9s %12s\n", "predictor", "ms", "of dense FFN")
		}
		for j := pj; j < len(jobs); j++ {
			m := median(times[j])
			fmt.Fprintf(&sb, "  %-22s %9.3f %11.1f%%\n", jobs[j].name, float64(m)/1e6, 100*float64(m)/float64(dense))
		}
	}
	t.Log("\n" + sb.String())
}
