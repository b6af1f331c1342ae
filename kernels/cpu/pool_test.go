package cpu_test

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stokehq/stoke/kernels/cpu"
)

// coverTask counts how often each item is visited and checks chunk sizes.
type coverTask struct {
	hits  []atomic.Int32
	grain int
	short atomic.Int32 // chunks shorter than grain that do not end at n
	empty atomic.Bool
}

func (c *coverTask) Run(lo, hi int) {
	if lo >= hi {
		c.empty.Store(true)
	}
	if hi-lo < c.grain && hi != len(c.hits) {
		c.short.Add(1)
	}
	for i := lo; i < hi; i++ {
		c.hits[i].Add(1)
	}
}

func TestParallelCoversEachItemOnce(t *testing.T) {
	for _, threads := range []int{1, 2, 3, 8} {
		p := cpu.NewPool(threads)
		for _, n := range []int{0, 1, 2, 5, 7, 64, 1000} {
			for _, grain := range []int{-1, 0, 1, 3, 7, 1000} {
				c := &coverTask{hits: make([]atomic.Int32, n), grain: max(grain, 1)}
				for rep := range 3 {
					p.Parallel(n, grain, c)
					for i := range c.hits {
						if h := c.hits[i].Load(); h != int32(rep+1) {
							t.Fatalf("threads %d n %d grain %d: item %d visited %d times after %d calls", threads, n, grain, i, h, rep+1)
						}
					}
				}
				if c.short.Load() != 0 || c.empty.Load() {
					t.Errorf("threads %d n %d grain %d: %d short chunks, empty chunk %v", threads, n, grain, c.short.Load(), c.empty.Load())
				}
			}
		}
		p.Close()
	}
}

// idTask checks that worker ids are in range and never run two chunks at
// once.
type idTask struct {
	busy    []atomic.Int32
	bad     atomic.Bool
	visited atomic.Int64
}

func (c *idTask) RunWorker(id, lo, hi int) {
	if id < 0 || id >= len(c.busy) || c.busy[id].Add(1) != 1 {
		c.bad.Store(true)
		return
	}
	c.visited.Add(int64(hi - lo))
	c.busy[id].Add(-1)
}

func TestParallelWorkersIDs(t *testing.T) {
	for _, threads := range []int{1, 2, 4} {
		p := cpu.NewPool(threads)
		c := &idTask{busy: make([]atomic.Int32, threads)}
		for range 200 {
			p.ParallelWorkers(97, 1, c)
		}
		if c.bad.Load() || c.visited.Load() != 200*97 {
			t.Errorf("threads %d: bad ids %v, visited %d of %d", threads, c.bad.Load(), c.visited.Load(), 200*97)
		}
		p.Close()
	}
}

func TestNewPoolDefaultThreads(t *testing.T) {
	p := cpu.NewPool(0)
	defer p.Close()
	if p.Threads() < 1 {
		t.Fatalf("Threads() = %d", p.Threads())
	}
}

type sumTask struct {
	x   []int64
	out []int64 // per-item output, no sharing
}

func (s *sumTask) Run(lo, hi int) {
	for i := lo; i < hi; i++ {
		s.out[i] = s.x[i] * 2
	}
}

func TestParallelNoAllocs(t *testing.T) {
	p := cpu.NewPool(4)
	defer p.Close()
	s := &sumTask{x: make([]int64, 4096), out: make([]int64, 4096)}
	allocs := testing.AllocsPerRun(200, func() { p.Parallel(len(s.x), 16, s) })
	if allocs != 0 {
		t.Errorf("Parallel allocates %v times per call", allocs)
	}
}

// Many short calls back to back, from several goroutines: catches lost
// wake-ups (the test would hang) and unsynchronised job state (-race).
func TestParallelStress(t *testing.T) {
	p := cpu.NewPool(4)
	defer p.Close()
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	for g := range 3 {
		wg.Go(func() {
			n := 50 + g
			s := &sumTask{x: make([]int64, n), out: make([]int64, n)}
			for i := range s.x {
				s.x[i] = int64(i + g)
			}
			for rep := range 2000 {
				clear(s.out)
				p.Parallel(n, 1+rep%5, s)
				for i, v := range s.out {
					if v != 2*s.x[i] {
						errs <- fmt.Errorf("goroutine %d call %d: out[%d] = %d", g, rep, i, v)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestPoolClose(t *testing.T) {
	p := cpu.NewPool(3)
	p.Parallel(10, 1, &sumTask{x: make([]int64, 10), out: make([]int64, 10)})
	p.Close()
	p.Close() // idempotent
	defer func() {
		if recover() == nil {
			t.Error("Parallel after Close did not panic")
		}
	}()
	p.Parallel(10, 1, &sumTask{x: make([]int64, 10), out: make([]int64, 10)})
}

type nopTask struct{}

func (nopTask) Run(lo, hi int) {}

// BenchmarkParallelOverhead is the cost of one call that wakes every
// worker and does no work: the fixed price of each parallel kernel.
func BenchmarkParallelOverhead(b *testing.B) {
	for _, threads := range []int{1, 2, 4} {
		b.Run(fmt.Sprint(threads), func(b *testing.B) {
			p := cpu.NewPool(threads)
			defer p.Close()
			t := &nopTask{}
			b.ReportAllocs()
			for b.Loop() {
				p.Parallel(threads, 1, t)
			}
		})
	}
}
