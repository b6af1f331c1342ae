package cpu

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// Task is a unit of data-parallel work: Run processes items [lo, hi).
// Pass a pointer to a preallocated struct: converting a pointer to an
// interface does not allocate, so a Parallel call then allocates nothing.
type Task interface {
	Run(lo, hi int)
}

// WorkerTask is a Task that is told which worker runs it, so it can use
// per-worker scratch: worker is in [0, Threads()) and no two chunks run on
// the same worker at the same time.
type WorkerTask interface {
	RunWorker(worker, lo, hi int)
}

// spinFor is how long an idle worker (or a caller waiting for workers)
// polls before it blocks on a channel. Decode issues parallel calls back to
// back, a few microseconds apart; a short poll saves the scheduler's wake-up
// latency there without burning a core while the pool is idle.
const spinFor = 50 * time.Microsecond

// Pool is a fixed set of worker goroutines that run data-parallel loops.
//
// NewPool(n) starts n−1 goroutines; the goroutine that calls Parallel (or a
// kernel method) works as the n-th. Work is split into chunks that workers
// claim from an atomic counter, so a slow or descheduled worker does not
// hold the others up. A call allocates nothing and creates no goroutines.
//
// Calls on one Pool are serialised by a mutex: several goroutines may share
// a Pool, but their calls run one after another. A Task must not call back
// into the Pool that runs it (it would deadlock).
type Pool struct {
	threads int
	mu      sync.Mutex
	closed  bool
	workers []*worker
	exited  sync.WaitGroup

	// The current job. Written by the caller before it publishes a new
	// generation to the workers, read by them after they observe it.
	task  Task
	wtask WorkerTask
	n     int
	chunk int
	_     [64]byte     // next, which every thread hammers, gets a cache line of its own
	next  atomic.Int64 // next item to claim
	_     [56]byte
	// pending counts the woken workers that have not finished the job; its
	// waitBit is set once the caller blocks on done. One word, so the last
	// worker's decrement both finishes the job and tells whether to send.
	pending atomic.Int64
	done    chan struct{} // capacity 1

	gen uint64 // job generation, caller side

	// Kernel task structs and scratch, reused by every call.
	mv   matVecTask
	mvr  matVecRowsTask
	mm   matMulTask
	prep prepTask
	att  attentionTask
	// Attention's one sequence, and AttentionBatch's pair counts
	attOne  [1]AttnSeq
	attEnds []int
	scr     [][]float32 // per-worker float scratch (attention scores)
	qv      []QVec      // quantized activations of the current driver call
	qb      []qBatch    // MatMul's groups of inputs for the multi-input kernels
	pk      q4x16Task   // MatMulQ4x16's task
	pkx     [][]byte    // MatMulQ4x16's inputs, laid out per group (q4x16Put)
	pkq     [][]byte    // MatMulQ4x16's per-worker Q8_0 scratch
}

type worker struct {
	gen      atomic.Uint64 // generation of the job this worker is assigned
	sleeping atomic.Bool   // blocked (or about to block) on wake
	wake     chan struct{} // capacity 1
	quit     atomic.Bool
	_        [64]byte // keep workers' hot fields on separate cache lines
}

// NewPool starts a pool of threads workers, the calling goroutine included;
// threads ≤ 0 means runtime.NumCPU(). Close the pool when done with it: its
// goroutines live until then.
func NewPool(threads int) *Pool {
	if threads <= 0 {
		threads = runtime.NumCPU()
	}
	p := &Pool{
		threads: threads,
		done:    make(chan struct{}, 1),
		scr:     make([][]float32, threads),
	}
	p.workers = make([]*worker, threads-1)
	p.exited.Add(threads - 1)
	for i := range p.workers {
		w := &worker{wake: make(chan struct{}, 1)}
		p.workers[i] = w
		go p.loop(w, i+1)
	}
	return p
}

// Threads is the number of goroutines that work on a call, the caller's
// included.
func (p *Pool) Threads() int { return p.threads }

// Close stops the workers and waits for them to exit. Calls after Close
// panic. Close is idempotent.
func (p *Pool) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	p.closed = true
	for _, w := range p.workers {
		w.quit.Store(true)
		w.gen.Add(1)
		if w.sleeping.Swap(false) {
			w.wake <- struct{}{}
		}
	}
	p.exited.Wait()
}

// Parallel runs task over [0, n) split into chunks of grain items (the last
// chunk may be shorter; grain < 1 means 1) and returns when every chunk is
// done. Chunks are handed out dynamically, so uneven work balances itself.
// Only as many workers as there are chunks are woken: a call whose work fits
// one chunk runs entirely on the caller.
func (p *Pool) Parallel(n, grain int, task Task) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.run(n, grain, task, nil)
}

// ParallelWorkers is Parallel for a WorkerTask.
func (p *Pool) ParallelWorkers(n, grain int, task WorkerTask) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.run(n, grain, nil, task)
}

// run does the work of Parallel; p.mu must be held. Exactly one of task and
// wtask is non-nil.
func (p *Pool) run(n, grain int, task Task, wtask WorkerTask) {
	if p.closed {
		panic("cpu: Pool used after Close")
	}
	if n <= 0 {
		return
	}
	grain = max(grain, 1)
	chunks := (n-1)/grain + 1
	helpers := min(len(p.workers), chunks-1)
	if helpers == 0 {
		call(task, wtask, 0, 0, n)
		return
	}
	p.task, p.wtask, p.n, p.chunk = task, wtask, n, grain
	p.next.Store(0)
	p.pending.Store(int64(helpers))
	p.gen++
	for _, w := range p.workers[:helpers] {
		w.gen.Store(p.gen)
		if w.sleeping.Swap(false) {
			w.wake <- struct{}{}
		}
	}
	p.work(0)
	p.wait()
	p.task, p.wtask = nil, nil
}

func call(task Task, wtask WorkerTask, id, lo, hi int) {
	if task != nil {
		task.Run(lo, hi)
	} else {
		wtask.RunWorker(id, lo, hi)
	}
}

// work claims and runs chunks of the current job until none are left.
func (p *Pool) work(id int) {
	n, c := int64(p.n), int64(p.chunk)
	task, wtask := p.task, p.wtask
	for {
		lo := p.next.Add(c) - c
		if lo >= n {
			return
		}
		call(task, wtask, id, int(lo), int(min(lo+c, n)))
	}
}

// wait returns when every woken worker has finished the current job.
func (p *Pool) wait() {
	if spin(func() bool { return p.pending.Load() == 0 }) {
		return
	}
	for {
		v := p.pending.Load()
		if v == 0 {
			return
		}
		if p.pending.CompareAndSwap(v, v|waitBit) {
			<-p.done
			return
		}
	}
}

const waitBit = 1 << 62

// loop is a worker goroutine: wait for a job generation, work, report.
func (p *Pool) loop(w *worker, id int) {
	defer p.exited.Done()
	var seen uint64
	for {
		for w.gen.Load() == seen && !spin(func() bool { return w.gen.Load() != seen }) {
			// Block. A caller that publishes a generation after we set
			// sleeping sees the flag and sends; if it published before, we
			// see the generation and take the flag back — unless the caller
			// took it first, in which case its send is on the way. A token
			// can be stale (the caller was descheduled between publishing
			// and looking at the flag, and we did the job meanwhile), so
			// the generation is checked again after every wake-up.
			w.sleeping.Store(true)
			if w.gen.Load() == seen || !w.sleeping.Swap(false) {
				<-w.wake
			}
		}
		if w.quit.Load() {
			return
		}
		seen = w.gen.Load()
		p.work(id)
		if p.pending.Add(-1) == waitBit {
			p.done <- struct{}{}
		}
	}
}

// spin polls cond for up to spinFor and reports whether it became true.
// The closure does not escape, so it does not allocate.
func spin(cond func() bool) bool {
	var start time.Time
	for i := 0; ; i++ {
		if cond() {
			return true
		}
		switch {
		case i == 0:
			start = time.Now()
		case i%16 == 0:
			if time.Since(start) > spinFor {
				return false
			}
			runtime.Gosched()
		}
	}
}
