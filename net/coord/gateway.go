package coord

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/stokehq/stoke/engine"
	"github.com/stokehq/stoke/net/verify"
	"github.com/stokehq/stoke/net/wire"
)

// ErrNoNode is returned when no node can take a request: the HTTP
// gateway answers 503 with Retry-After, as for a full queue.
var ErrNoNode = fmt.Errorf("%w: no node serving the model is available", engine.ErrQueueFull)

// Gateway routes generations to nodes; it implements openai.Backend.
//
// Retry semantics. Nodes send token ids only; the gateway decodes text
// itself over the whole answer (see textStream), so it can switch nodes
// mid-answer without a seam. When the node of an answer is lost (its
// connection drops, it misses its heartbeats, it stalls past the token
// timeout, or it breaks the protocol), the gateway resumes on the next
// best node: the new job's prompt is the original prompt followed by
// every token already streamed to the client, with the same parameters
// (MaxTokens reduced by the tokens sent, the seed derived from the
// original seed and the number of tokens sent). Only tokens the new node
// generates are emitted, so the client sees one answer with nothing lost
// and nothing repeated. Resuming costs one prefill of the tokens already
// sent, where restarting from scratch would decode them again (and
// would have to abandon the answer whenever the second node's tokens
// drifted from the first's: cross-hardware float differences flip near
// ties even under greedy sampling). Greedy answers are the same as an
// uninterrupted run up to such near-ties; seeded sampled answers are a
// fresh draw for the resumed part, which is as valid a sample.
type Gateway struct {
	c      *Coordinator
	reqSeq atomic.Uint64
	jobSeq atomic.Uint64
}

// Stats sums the nodes that serve the gateway's model.
func (g *Gateway) Stats() engine.SchedulerStats {
	r := g.c.reg
	r.mu.Lock()
	defer r.mu.Unlock()
	var st engine.SchedulerStats
	for _, p := range r.peers {
		if !usable(p, g.c.cfg.Model.SHA256, 0) {
			continue
		}
		slots := int(p.hello.Slots)
		st.Slots += slots
		st.Active += min(p.inflight, slots)
		st.Queued += max(0, p.inflight-slots)
	}
	return st
}

// errEmit wraps an error from the caller's emit: the client went away.
type errEmit struct{ err error }

func (e errEmit) Error() string { return e.err.Error() }
func (e errEmit) Unwrap() error { return e.err }

// minSpeedSample is the fewest tokens a job needs for its speed to count
// in routing: shorter jobs measure scheduling jitter.
const minSpeedSample = 16

// errLost is a node that stopped answering mid-job.
var errLost = errors.New("node lost")

// answer is one request's state across the nodes it runs on.
type answer struct {
	g      *Gateway
	id     string
	prompt []int32
	params engine.GenerateParams
	emit   func(engine.Token) error
	text   *textStream
	tokens []int32 // emitted so far, all nodes
	t0     time.Time
	first  time.Time
}

// Generate runs a generation on the nodes, resuming on another node when
// one is lost (see Gateway).
func (g *Gateway) Generate(ctx context.Context, prompt []int32, p engine.GenerateParams, emit func(engine.Token) error) (*engine.Result, error) {
	if len(prompt) == 0 {
		return nil, errors.New("coord: empty prompt")
	}
	if err := p.Sampler.Validate(); err != nil {
		return nil, err
	}
	c := g.c
	a := &answer{g: g, id: fmt.Sprintf("req-%d", g.reqSeq.Add(1)), prompt: prompt, params: p, emit: emit,
		text: newTextStream(c.cfg.Tok, p.Stop), t0: time.Now()}
	if a.emit == nil {
		a.emit = func(engine.Token) error { return nil }
	}
	// nodes tried, by connection: a node that reconnects may be tried again
	tried := map[*peer]bool{}
	var lastErr error
	for attempt := 0; attempt < c.cfg.MaxAttempts; attempt++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if p.MaxTokens > 0 && len(a.tokens) >= p.MaxTokens {
			// the node was lost after its last token, before its end
			return a.result(engine.FinishLength)
		}
		peer := g.pick(ctx, len(prompt)+len(a.tokens), tried)
		if peer == nil {
			break
		}
		tried[peer] = true
		finish, err := a.run(ctx, attempt, peer)
		c.reg.done(peer)
		if err == nil {
			return a.result(finish)
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		var ee errEmit
		if errors.As(err, &ee) {
			return nil, ee.err
		}
		var we *wire.Error
		if errors.As(err, &we) && we.Code == wire.CodeBadRequest {
			return nil, fmt.Errorf("coord: node refused the request: %s", we.Message)
		}
		lastErr = err
		c.log.Warn("job failed on a node: trying another", "request", a.id, "node", peer.key.Short(), "attempt", attempt,
			"tokens_sent", len(a.tokens), "err", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if len(a.tokens) == 0 {
		if lastErr != nil {
			return nil, fmt.Errorf("%w (last error: %v)", ErrNoNode, lastErr)
		}
		return nil, ErrNoNode
	}
	return nil, fmt.Errorf("coord: the answer stopped after %d tokens and no node could resume it: %v", len(a.tokens), lastErr)
}

// pick waits up to NodeWait for a node that can take a job of n prompt
// tokens: a coordinator restart or a node's reconnection is a blip, not
// a 503.
func (g *Gateway) pick(ctx context.Context, n int, tried map[*peer]bool) *peer {
	c := g.c
	deadline := time.Now().Add(c.cfg.NodeWait)
	for {
		if p := c.reg.pick(c.cfg.Model.SHA256, n, tried); p != nil {
			return p
		}
		if !time.Now().Before(deadline) {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-c.ctx.Done():
			return nil
		case <-time.After(25 * time.Millisecond):
		}
	}
}

func (a *answer) result(finish string) (*engine.Result, error) {
	if rest := a.text.finish(); rest != "" {
		if err := a.emit(engine.Token{ID: -1, Text: rest}); err != nil {
			return nil, err
		}
	}
	now := time.Now()
	res := &engine.Result{PromptTokens: len(a.prompt), Tokens: a.tokens, Text: a.text.text.String(), Finish: finish}
	if !a.first.IsZero() {
		res.PromptTime = a.first.Sub(a.t0)
		res.DecodeTime = now.Sub(a.first)
	}
	return res, nil
}

// resumeSeed derives the seed of a job resumed after n tokens
// (splitmix64 of the original seed and n).
func resumeSeed(seed uint64, n int) uint64 {
	z := seed + uint64(n)*0x9e3779b97f4a7c15
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

// run is one attempt on one node. It returns the finish reason when the
// answer is complete.
func (a *answer) run(ctx context.Context, attempt int, p *peer) (finish string, err error) {
	c := a.g.c
	jobPrompt := append(slices.Clip(a.prompt), a.tokens...)
	jp := a.params
	if jp.MaxTokens > 0 {
		jp.MaxTokens -= len(a.tokens)
	}
	if maxCtx := int(c.cfg.Model.Context); maxCtx > 0 {
		// the gateway's context bounds the answer, whatever the node's
		room := maxCtx - len(jobPrompt)
		if room <= 0 {
			return engine.FinishLength, nil
		}
		if jp.MaxTokens <= 0 || jp.MaxTokens > room {
			jp.MaxTokens = room
		}
	}
	if len(a.tokens) > 0 {
		jp.Sampler.Seed = resumeSeed(a.params.Sampler.Seed, len(a.tokens))
	}
	rec := JobRecord{Request: a.id, Attempt: attempt, Node: p.key, Model: shaShort(c.cfg.Model.SHA256), Prompt: len(jobPrompt), Start: time.Now()}
	var out []int32
	var proof []byte
	var firstTok time.Time
	defer func() {
		rec.End, rec.Tokens = time.Now(), len(out)
		switch {
		case err == nil:
			rec.Outcome, rec.Finish, rec.Reward, rec.Proof = "done", finish, c.cfg.Policy.Reward, len(proof)
			if len(out) >= minSpeedSample {
				c.reg.observe(p, float64(len(out)-1)/rec.End.Sub(firstTok).Seconds())
			}
		case ctx.Err() != nil:
			rec.Outcome = "cancelled"
		case errors.As(err, new(errEmit)):
			rec.Outcome = "client gone"
		case errors.Is(err, errLost):
			rec.Outcome = "lost"
		default:
			rec.Outcome = "failed: " + err.Error()
		}
		if e := c.recordJob(&rec); e != nil {
			c.log.Error("ledger: job not recorded", "err", e)
			return
		}
		if err == nil {
			c.checks.maybe(rec, verify.Check{Prompt: jobPrompt, Output: out, Params: jp, Proof: proof})
		}
	}()

	s, err := p.conn.OpenStreamSync(ctx)
	if err != nil {
		return "", fmt.Errorf("%w: opening a stream: %v", errLost, err)
	}
	stop := context.AfterFunc(ctx, func() {
		s.CancelRead(quic.StreamErrorCode(wire.CodeCancelled))
		s.CancelWrite(quic.StreamErrorCode(wire.CodeCancelled))
	})
	defer stop()
	abort := func(code wire.Code) {
		s.CancelRead(quic.StreamErrorCode(code))
		s.CancelWrite(quic.StreamErrorCode(code))
	}
	req := &wire.JobRequest{ID: a.g.jobSeq.Add(1), Model: c.cfg.Model.SHA256, Prompt: jobPrompt, Params: wire.FromEngine(jp), Fingerprint: true}
	s.SetWriteDeadline(time.Now().Add(c.cfg.TokenTimeout))
	if err := wire.Write(s, req); err != nil {
		abort(wire.CodeCancelled)
		return "", fmt.Errorf("%w: sending the job: %v", errLost, err)
	}
	s.Close() // the request is all we send
	vocab := int32(c.cfg.Tok.VocabSize())
	maxCtx := int(c.cfg.Model.Context)
	wait := c.cfg.FirstTokenTimeout
	for {
		s.SetReadDeadline(time.Now().Add(wait))
		m, err := wire.Read(s)
		if err != nil {
			abort(wire.CodeCancelled)
			if ctx.Err() != nil {
				return "", ctx.Err()
			}
			if errors.Is(err, wire.ErrMalformed) {
				return "", fmt.Errorf("protocol: %w", err)
			}
			return "", fmt.Errorf("%w after %d tokens: %v", errLost, len(out), err)
		}
		switch m := m.(type) {
		case *wire.Tokens:
			wait = c.cfg.TokenTimeout
			for _, id := range m.IDs {
				switch {
				case id >= vocab:
					abort(wire.CodeProtocol)
					return "", fmt.Errorf("protocol: token id %d is outside the vocabulary of %d", id, vocab)
				case a.params.MaxTokens > 0 && len(a.tokens) >= a.params.MaxTokens:
					abort(wire.CodeProtocol)
					return "", fmt.Errorf("protocol: more than max_tokens %d", a.params.MaxTokens)
				case maxCtx > 0 && len(a.prompt)+len(a.tokens) >= maxCtx:
					abort(wire.CodeProtocol)
					return "", fmt.Errorf("protocol: tokens past the context of %d", maxCtx)
				}
				if len(out) == 0 {
					firstTok = time.Now()
				}
				out = append(out, id)
				a.tokens = append(a.tokens, id)
				if a.first.IsZero() {
					a.first = time.Now()
				}
				text, hit := a.text.add(id)
				if err := a.emit(engine.Token{ID: id, Text: text}); err != nil {
					abort(wire.CodeCancelled)
					return "", errEmit{err}
				}
				if hit {
					// a stop string across a resume boundary: only the
					// gateway sees the whole text
					abort(wire.CodeCancelled)
					return engine.FinishStop, nil
				}
			}
		case *wire.JobEnd:
			switch {
			case int(m.Tokens) != len(out):
				return "", fmt.Errorf("protocol: job end counts %d tokens, %d were sent", m.Tokens, len(out))
			case int(m.PromptTokens) != len(jobPrompt):
				return "", fmt.Errorf("protocol: job end counts %d prompt tokens, the job had %d", m.PromptTokens, len(jobPrompt))
			case m.Finish != engine.FinishStop && m.Finish != engine.FinishLength:
				return "", fmt.Errorf("protocol: finish reason %q", m.Finish)
			}
			proof = m.Proof
			return m.Finish, nil
		case *wire.Error:
			return "", m
		default:
			abort(wire.CodeProtocol)
			return "", fmt.Errorf("protocol: unexpected %s in a job stream", m.Type())
		}
	}
}

// recordJob commits a job attempt and its node's counters.
func (c *Coordinator) recordJob(rec *JobRecord) error {
	return c.ledger.Batch(func(t *Tx) error {
		if err := t.AppendJob(rec); err != nil {
			return err
		}
		r, ok, err := t.Node(rec.Node)
		if err != nil || !ok {
			return err
		}
		switch rec.Outcome {
		case "done":
			r.Jobs++
			r.Tokens += int64(rec.Tokens)
			r.Balance += rec.Reward
		case "lost":
			r.Lost++
		}
		r.LastSeen = rec.End
		return t.PutNode(r)
	})
}
