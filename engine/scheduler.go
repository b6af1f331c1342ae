package engine

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stokehq/stoke/models/dtype"
)

// ErrQueueFull is returned by Scheduler.Generate when every slot is busy
// and the wait queue is full: the server answers 503 with Retry-After.
var ErrQueueFull = errors.New("engine: all slots busy and the queue is full")

// ErrClosed is returned for requests still running when the scheduler
// closes.
var ErrClosed = errors.New("engine: scheduler closed")

// SchedulerOptions configure continuous batching.
type SchedulerOptions struct {
	Parallel int        // sequence slots decoded together (default 4)
	Context  int        // KV cache tokens per slot (default min(model context, 4096))
	Queue    int        // requests that may wait for a slot (default 4·Parallel)
	Threads  int        // CPU threads (0: all cores)
	KVType   dtype.Type // F32 (default) or F16
	Batch    int        // tokens per forward pass (prefill chunks + decodes; default 64, at least Parallel)
	// Setup, if set, configures the scheduler's runner before the first
	// pass (offload to a device, sparsity); an error fails NewScheduler.
	Setup func(*Runner) error
}

// SchedulerStats is a snapshot for /metrics.
type SchedulerStats struct {
	Slots, Active, Queued   int
	KVUsedTokens, KVTokens  int   // tokens held in all slots' caches / their capacity
	PromptTokens, GenTokens int64 // totals since start
	Steps                   int64 // forward passes run
	Cancelled               int64 // requests cancelled by their client
	// FFN neurons the sparse FFN computed and could have (Runner.
	// SparseStats), both 0 without one: their ratio is the share of the
	// FFN a decode step reads.
	SparseActive, SparsePossible int64
}

// Scheduler runs many generations at once with continuous batching:
// sequences join and leave the running batch between forward passes, and
// one pass reads each weight once for every sequence in it. Prompts are
// prefilled in chunks that share a pass with the other slots' decode
// tokens, so a long prompt does not stall everyone's stream.
//
// Tokens are handed to each request's own goroutine through a small
// mailbox, so a slow client never blocks the batch.
type Scheduler struct {
	m     *Model
	r     *Runner
	ctx   int
	slots []*slot

	mu      sync.Mutex
	queue   []*job
	maxQ    int
	closed  bool
	wake    chan struct{}
	stopped chan struct{}

	promptTokens, genTokens, steps, cancelled atomic.Int64
	sparseActive, sparsePossible              atomic.Int64
	active, kvUsed                            atomic.Int64

	seqs []Seq // reused per step
}

type slot struct {
	kv      *KVCache
	hist    []int32 // tokens in kv, for prefix reuse
	job     *job
	fed     int // prompt tokens already in the cache
	g       generation
	sampler *Sampler
	logits  []float32
	next    int32 // token to feed in decode phase
	t0      time.Time
	final   bool // generation is over; the last token is fed for the fingerprint
}

type job struct {
	ctx    context.Context
	prompt []int32
	p      GenerateParams

	mu     sync.Mutex
	toks   []Token
	res    *Result
	err    error
	notify chan struct{} // capacity 1: "something new in the mailbox"
	gone   atomic.Bool   // the requester stopped listening
}

func (j *job) post(t Token) {
	j.mu.Lock()
	j.toks = append(j.toks, t)
	j.mu.Unlock()
	select {
	case j.notify <- struct{}{}:
	default:
	}
}

func (j *job) end(res *Result, err error) {
	j.mu.Lock()
	j.res, j.err = res, err
	if res == nil && err == nil {
		j.err = ErrClosed
	}
	j.mu.Unlock()
	select {
	case j.notify <- struct{}{}:
	default:
	}
}

// NewScheduler allocates the slots' caches and starts the scheduling loop.
func NewScheduler(m *Model, o SchedulerOptions) (*Scheduler, error) {
	if o.Parallel <= 0 {
		o.Parallel = 4
	}
	if o.Context <= 0 {
		o.Context = min(m.Config.Context, DefaultContext)
	}
	if o.Queue <= 0 {
		o.Queue = 4 * o.Parallel
	}
	if o.Batch <= 0 {
		o.Batch = DefaultBatch
	}
	o.Batch = max(o.Batch, o.Parallel)
	if o.KVType == 0 {
		o.KVType = dtype.F32
	}
	s := &Scheduler{m: m, ctx: o.Context, maxQ: o.Queue, wake: make(chan struct{}, 1), stopped: make(chan struct{})}
	for range o.Parallel {
		kv, err := m.NewKVCache(o.Context, o.KVType)
		if err != nil {
			return nil, err
		}
		sm, err := NewSampler(SamplerParams{TopP: 1, RepeatPenalty: 1}, m.Config.Vocab)
		if err != nil {
			return nil, err
		}
		s.slots = append(s.slots, &slot{kv: kv, sampler: sm, logits: make([]float32, m.Config.Vocab)})
	}
	s.r = m.NewRunner(o.Batch, o.Threads, nil)
	if o.Setup != nil {
		if err := o.Setup(s.r); err != nil {
			s.r.Close()
			return nil, err
		}
	}
	s.seqs = make([]Seq, 0, o.Parallel)
	go s.loop()
	return s, nil
}

// Model is the scheduler's model.
func (s *Scheduler) Model() *Model { return s.m }

// Context is the KV cache length of each slot.
func (s *Scheduler) Context() int { return s.ctx }

// Generate queues a generation and blocks until it ends, calling emit in
// the caller's goroutine for each token. Cancelling ctx (a client that
// disconnected) or an error from emit frees the slot at the next step.
// Errors: ErrQueueFull, ErrContextFull (prompt too long for a slot),
// sampler parameter errors, ctx.Err(), emit's error, ErrClosed.
func (s *Scheduler) Generate(ctx context.Context, prompt []int32, p GenerateParams, emit func(Token) error) (*Result, error) {
	if len(prompt) == 0 {
		return nil, errors.New("engine: empty prompt")
	}
	if len(prompt) >= s.ctx {
		return nil, fmt.Errorf("%w: prompt of %d tokens leaves no room in a context of %d", ErrContextFull, len(prompt), s.ctx)
	}
	if err := p.Sampler.Validate(); err != nil {
		return nil, err
	}
	v := int32(s.m.Config.Vocab)
	for _, t := range prompt {
		if t < 0 || t >= v {
			return nil, fmt.Errorf("engine: token id %d is out of range [0, %d)", t, v)
		}
	}
	j := &job{ctx: ctx, prompt: prompt, p: p, notify: make(chan struct{}, 1)}
	s.mu.Lock()
	switch {
	case s.closed:
		s.mu.Unlock()
		return nil, ErrClosed
	case len(s.queue) >= s.maxQ:
		s.mu.Unlock()
		return nil, ErrQueueFull
	}
	s.queue = append(s.queue, j)
	s.mu.Unlock()
	s.kick()

	var buf []Token
	for {
		select {
		case <-j.notify:
		case <-ctx.Done():
			j.gone.Store(true)
			s.kick()
			return nil, ctx.Err()
		}
		j.mu.Lock()
		buf, j.toks = j.toks, buf[:0]
		res, err := j.res, j.err
		j.mu.Unlock()
		for _, t := range buf {
			if emit == nil {
				continue
			}
			if e := emit(t); e != nil {
				j.gone.Store(true)
				s.kick()
				return nil, e
			}
		}
		if res != nil || err != nil {
			return res, err
		}
	}
}

// Stats returns a snapshot of the scheduler's state.
func (s *Scheduler) Stats() SchedulerStats {
	s.mu.Lock()
	q := len(s.queue)
	s.mu.Unlock()
	return SchedulerStats{
		Slots: len(s.slots), Active: int(s.active.Load()), Queued: q,
		KVUsedTokens: int(s.kvUsed.Load()), KVTokens: len(s.slots) * s.ctx,
		PromptTokens: s.promptTokens.Load(), GenTokens: s.genTokens.Load(),
		Steps: s.steps.Load(), Cancelled: s.cancelled.Load(),
		SparseActive: s.sparseActive.Load(), SparsePossible: s.sparsePossible.Load(),
	}
}

// Close stops accepting requests, ends those still queued or running with
// ErrClosed and waits for the loop to exit.
func (s *Scheduler) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		<-s.stopped
		return
	}
	s.closed = true
	s.mu.Unlock()
	s.kick()
	<-s.stopped
	s.r.Close()
}

func (s *Scheduler) kick() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *Scheduler) loop() {
	defer close(s.stopped)
	for {
		s.mu.Lock()
		closed := s.closed
		if closed {
			for _, j := range s.queue {
				j.end(nil, ErrClosed)
			}
			s.queue = nil
		}
		s.mu.Unlock()
		if closed {
			for _, sl := range s.slots {
				if sl.job != nil {
					s.release(sl, nil, ErrClosed)
				}
			}
			return
		}
		s.admit()
		s.reap()
		if !s.step() {
			<-s.wake
		}
	}
}

// admit moves queued jobs into free slots, preferring the free slot whose
// cache shares the longest prefix with the prompt (a chat that continues
// reuses its cache).
func (s *Scheduler) admit() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(s.queue) > 0 {
		j := s.queue[0]
		var best *slot
		bestN := -1
		for _, sl := range s.slots {
			if sl.job != nil {
				continue
			}
			n := commonPrefix(sl.hist, j.prompt)
			if n > bestN {
				best, bestN = sl, n
			}
		}
		if best == nil {
			return
		}
		s.queue = s.queue[1:]
		if j.gone.Load() || j.ctx.Err() != nil {
			s.cancelled.Add(1)
			j.end(nil, context.Canceled)
			continue
		}
		// keep the shared prefix, but always feed at least one token so
		// the slot has fresh logits to sample from
		keep := min(bestN, len(j.prompt)-1)
		if j.p.Fingerprint {
			keep = 0 // the fingerprint covers the whole prompt
		}
		best.kv.Truncate(keep)
		best.hist = best.hist[:keep]
		best.fed = keep
		if err := best.g.start(s.m, j.prompt, j.p, best.sampler); err != nil {
			j.end(nil, err)
			continue
		}
		best.job = j
		best.t0 = time.Now()
		s.active.Add(1)
		s.promptTokens.Add(int64(len(j.prompt)))
	}
}

func commonPrefix(a, b []int32) int {
	n := 0
	for n < len(a) && n < len(b) && a[n] == b[n] {
		n++
	}
	return n
}

// reap frees the slots of requests whose client went away.
func (s *Scheduler) reap() {
	for _, sl := range s.slots {
		if sl.job != nil && (sl.job.gone.Load() || sl.job.ctx.Err() != nil) {
			s.cancelled.Add(1)
			s.release(sl, nil, context.Canceled)
		}
	}
}

func (s *Scheduler) release(sl *slot, res *Result, err error) {
	// hist must describe exactly what the cache holds, for prefix reuse:
	// drop a sampled token that was never fed.
	sl.hist = sl.hist[:sl.kv.Pos()]
	sl.job.end(res, err)
	sl.job = nil
	sl.final = false
	s.active.Add(-1)
}

// step runs one forward pass over every active slot: one token for each
// decoding slot, then prompt chunks for prefilling slots in the room left.
// It reports whether there was anything to do.
func (s *Scheduler) step() bool {
	budget := s.r.Batch()
	s.seqs = s.seqs[:0]
	var used int64
	for _, sl := range s.slots {
		used += int64(sl.kv.Pos())
		if sl.job == nil || sl.fed < len(sl.job.prompt) {
			continue
		}
		sq := Seq{KV: sl.kv, Tokens: sl.hist[len(sl.hist)-1:], Logits: sl.logits, Hidden: sl.g.hidden(), Decode: true}
		if sl.final {
			sq.Logits = nil
		}
		s.seqs = append(s.seqs, sq)
		budget--
	}
	s.kvUsed.Store(used)
	for _, sl := range s.slots {
		if budget <= 0 {
			break
		}
		if sl.job == nil || sl.fed >= len(sl.job.prompt) {
			continue
		}
		n := min(len(sl.job.prompt)-sl.fed, budget)
		chunk := sl.job.prompt[sl.fed : sl.fed+n]
		// a one-token prompt is a decode step, as Session.Eval feeds it
		sq := Seq{KV: sl.kv, Tokens: chunk, Hidden: sl.g.hidden(), Decode: len(sl.job.prompt) == 1}
		if sl.fed+n == len(sl.job.prompt) {
			sq.Logits = sl.logits
		}
		s.seqs = append(s.seqs, sq)
		budget -= n
	}
	if len(s.seqs) == 0 {
		return false
	}
	if err := s.r.Forward(s.seqs); err != nil {
		// Only a programming error gets here (inputs are checked on
		// entry); fail the requests in this pass rather than crash.
		for _, sl := range s.slots {
			if sl.job != nil {
				s.release(sl, nil, err)
			}
		}
		return true
	}
	s.steps.Add(1)
	if a, p := s.r.SparseStats(); p > 0 {
		// copied for Stats, which other goroutines call mid-pass
		s.sparseActive.Store(a)
		s.sparsePossible.Store(p)
	}
	for _, sl := range s.slots {
		j := sl.job
		if j == nil {
			continue
		}
		if sl.fed < len(j.prompt) {
			// this pass fed a prompt chunk
			for _, sq := range s.seqs {
				if sq.KV == sl.kv {
					sl.hist = append(sl.hist, sq.Tokens...)
					sl.fed += len(sq.Tokens)
				}
			}
			if sl.fed < len(j.prompt) {
				continue
			}
			sl.g.res.PromptTime = time.Since(sl.t0)
		}
		var tok Token
		ok, done := false, true
		if !sl.final {
			tok, ok, done = sl.g.next(sl.logits, sl.g.room(sl.kv.Pos(), sl.kv.Context()))
		}
		if ok {
			s.genTokens.Add(1)
			sl.hist = append(sl.hist, tok.ID)
			j.post(tok)
		}
		if done && !sl.final && sl.g.fpPending() {
			sl.final = true // feed the last token in the next pass
			continue
		}
		if done {
			rest, res := sl.g.finish()
			if rest != "" {
				j.post(Token{ID: -1, Text: rest})
			}
			s.release(sl, res, nil)
		}
	}
	return true
}
