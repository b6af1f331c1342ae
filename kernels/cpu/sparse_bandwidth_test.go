package cpu_test

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"
	"unsafe"

	"github.com/stokehq/stoke/kernels/cpu"
)

// BenchmarkReadBandwidthRows is BenchmarkReadBandwidth for the reads of a
// sparse FFN: a 7B Q4_0 layer's 76 MB of gate, up and down rows (3·11008
// rows of 2304 bytes, one row of 4096 Q4_0 weights) read whole, in order
// in chunks of 256 rows ("sequential", what a dense mat-vec reads), or as
// sorted random sets of 10% of the rows in chunks of 16 ("rows=10%", what
// a sparse one reads), each row summed
// as BenchmarkReadBandwidth sums its buffer, with every line of the row
// two ahead prefetched (PREFETCHT0), on 2 threads. GB/s is bytes read per
// second. A sparse product that reads its rows at the second figure is
// bound by memory as the dense one is at the first; on the development
// machine the second was about half the first (24–27 against 47–53
// GB/s), row sizes of 2–9 KiB alike, prefetch distances of 1–32 rows no
// better, which caps the sparse Q4_0 FFN's speed-up over the dense one at
// about half the ratio of their bytes.
//
//	go test ./kernels/cpu -run '^$' -bench ReadBandwidthRows
func BenchmarkReadBandwidthRows(b *testing.B) {
	const rowBytes, rows = 2304, 3 * 11008
	const rw = rowBytes / 8
	wb := weightBytes(8 * rows * rw)
	buf := unsafe.Slice((*uint64)(unsafe.Pointer(unsafe.SliceData(wb))), rows*rw)
	for i := range buf { // touch every page
		buf[i] = uint64(i)
	}
	defer runtime.GC() // the sets; buf is weightBytes', kept
	all := make([]int32, rows)
	for i := range all {
		all[i] = int32(i)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	var sets [][]int32
	for range sparseSets {
		perm := rng.Perm(rows)[:rows/10]
		idx := make([]int32, len(perm))
		for i, v := range perm {
			idx[i] = int32(v)
		}
		slices.Sort(idx)
		sets = append(sets, idx)
	}
	p := cpu.NewPool(2)
	defer p.Close()
	t := &rowSumTask{buf: buf, rw: rw, sums: make([][8]uint64, 2)}
	for _, f := range []float64{1, 0.1} {
		name := "sequential"
		if f < 1 {
			name = fmt.Sprintf("rows=%g%%", 100*f)
		}
		b.Run(name, func(b *testing.B) {
			n := 0
			for b.Loop() {
				grain := 256 // 576 KiB chunks, as MatVec's
				t.idx, t.pf = all, false
				if f < 1 {
					t.idx, t.pf, grain = sets[n%len(sets)], true, 16
				}
				p.ParallelWorkers(len(t.idx), grain, t)
				n += len(t.idx)
			}
			if sec := b.Elapsed().Seconds(); sec > 0 {
				b.ReportMetric(float64(n)*rowBytes/sec/1e9, "GB/s")
			}
		})
	}
	for _, s := range t.sums {
		sink += s[0]
	}
}

// rowSumTask sums the listed rows of rw words of buf, prefetching (pf)
// each row two rows ahead of it.
type rowSumTask struct {
	buf  []uint64
	idx  []int32
	rw   int
	pf   bool
	sums [][8]uint64 // per worker; [0] used, the rest pads a cache line
}

func (s *rowSumTask) RunWorker(w, lo, hi int) {
	var a, b, c, d uint64
	for k := lo; k < hi; k++ {
		if s.pf {
			n := int(s.idx[min(k+2, len(s.idx)-1)])
			cpu.PrefetchLines(unsafe.Slice((*byte)(unsafe.Pointer(&s.buf[n*s.rw])), 8*s.rw))
		}
		r := int(s.idx[k])
		x := s.buf[r*s.rw : (r+1)*s.rw]
		for i := 0; i+4 <= len(x); i += 4 {
			v := x[i : i+4 : i+4]
			a += v[0]
			b += v[1]
			c += v[2]
			d += v[3]
		}
	}
	s.sums[w][0] += a + b + c + d
}
