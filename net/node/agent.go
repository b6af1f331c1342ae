// Package node is the agent a GPU owner runs to join a Stoke network: it
// dials the coordinator over QUIC (mutual TLS 1.3, its ed25519 key as its
// identity), advertises its hardware, models and measured speed, sends
// heartbeats, runs the jobs the coordinator opens as streams and streams
// their tokens back, ending each with the engine's fingerprint. It
// verifies other nodes' jobs when asked. A lost connection is redialled
// with exponential backoff; cancelling Run's context drains: in-flight
// jobs finish, new ones are refused, then the connection closes.
package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/stokehq/stoke/engine"
	"github.com/stokehq/stoke/net/identity"
	"github.com/stokehq/stoke/net/verify"
	"github.com/stokehq/stoke/net/wire"
)

// Backend runs generations: engine.Scheduler implements it.
type Backend interface {
	Generate(ctx context.Context, prompt []int32, p engine.GenerateParams, emit func(engine.Token) error) (*engine.Result, error)
	Stats() engine.SchedulerStats
}

// Defaults.
const (
	DefaultMinBackoff   = 500 * time.Millisecond
	DefaultMaxBackoff   = 30 * time.Second
	DefaultDrainTimeout = 5 * time.Minute
	DefaultIdleTimeout  = 30 * time.Second
	handshakeTimeout    = 10 * time.Second
	requestTimeout      = 10 * time.Second // for a stream's first message
	minHeartbeat        = 20 * time.Millisecond
	maxHeartbeat        = time.Minute
)

// Config configures an Agent.
type Config struct {
	Coordinator string // host:port of the coordinator's QUIC listener
	Identity    *identity.Identity
	// Pin checks the coordinator's key (identity.Pin); nil accepts any.
	Pin func(identity.PublicKey) error
	// Hello is what the node advertises (the agent sets Version and
	// Verifier).
	Hello    wire.Hello
	Backend  Backend
	Vocab    int             // vocabulary size, to refuse bad token ids (0: the engine checks)
	Verifier verify.Verifier // nil: verification requests are refused
	// Fingerprint: send the engine's fingerprint with each job.
	Fingerprint bool

	MinBackoff, MaxBackoff time.Duration // reconnect delays (0: defaults)
	DrainTimeout           time.Duration // how long a drain waits for jobs (0: default)
	IdleTimeout            time.Duration // QUIC idle timeout (0: default)
	Logger                 *slog.Logger
}

// Agent is a running node.
type Agent struct {
	cfg Config
	log *slog.Logger

	mu       sync.Mutex
	inflight int
	draining bool
	conn     *quic.Conn
	udp      net.PacketConn
	killed   bool

	joined   atomic.Int64 // successful joins
	jobs     atomic.Int64 // jobs completed
	tpsBits  atomic.Uint32
	hbSeq    atomic.Uint64
	ctrlMu   sync.Mutex // serialises control-stream writes
	killedCh chan struct{}
}

// New checks cfg and makes an agent.
func New(cfg Config) (*Agent, error) {
	switch {
	case cfg.Coordinator == "":
		return nil, errors.New("node: no coordinator address")
	case cfg.Identity == nil:
		return nil, errors.New("node: no identity")
	case cfg.Backend == nil:
		return nil, errors.New("node: no backend")
	case len(cfg.Hello.Models) == 0:
		return nil, errors.New("node: no model to advertise")
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = DefaultMinBackoff
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		cfg.MaxBackoff = max(cfg.MinBackoff, DefaultMaxBackoff)
	}
	if cfg.DrainTimeout <= 0 {
		cfg.DrainTimeout = DefaultDrainTimeout
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	cfg.Hello.Version = wire.Version
	cfg.Hello.Verifier = cfg.Verifier != nil
	a := &Agent{cfg: cfg, log: cfg.Logger, killedCh: make(chan struct{})}
	if a.log == nil {
		a.log = slog.Default()
	}
	a.log = a.log.With("node", cfg.Identity.Pub.Short())
	a.tpsBits.Store(math.Float32bits(cfg.Hello.TokensPerSec))
	return a, nil
}

// Joins counts the times the coordinator welcomed this node.
func (a *Agent) Joins() int64 { return a.joined.Load() }

// Active is the number of jobs and verifications running.
func (a *Agent) Active() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.inflight
}

// ErrRefused wraps a coordinator's refusal (not admitted, quarantined,
// version): retrying will not help until an operator acts, though the
// agent keeps trying at its slowest pace.
var ErrRefused = errors.New("node: refused by the coordinator")

// Run joins and serves until ctx is cancelled, then drains and returns
// nil; it redials with exponential backoff (with jitter) after a lost
// connection.
func (a *Agent) Run(ctx context.Context) error {
	backoff := a.cfg.MinBackoff
	for {
		joined := a.joined.Load()
		err := a.session(ctx)
		if ctx.Err() != nil || a.isKilled() {
			return nil
		}
		if a.joined.Load() > joined {
			backoff = a.cfg.MinBackoff // it worked for a while: start over
		}
		wait := backoff/2 + rand.N(backoff/2+1)
		if errors.Is(err, ErrRefused) {
			a.log.Error("the coordinator refused this node", "key", a.cfg.Identity.Pub, "err", err, "retry_in", wait)
		} else {
			a.log.Warn("not connected to the coordinator", "err", err, "retry_in", wait.Round(time.Millisecond))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-a.killedCh:
			return nil
		case <-time.After(wait):
		}
		backoff = min(2*backoff, a.cfg.MaxBackoff)
	}
}

// Kill drops the connection without a word, as a crashed process would
// (the coordinator learns it from missed heartbeats), and makes Run
// return. For tests.
func (a *Agent) Kill() {
	a.mu.Lock()
	if a.killed {
		a.mu.Unlock()
		return
	}
	a.killed = true
	close(a.killedCh)
	udp, conn := a.udp, a.conn
	a.mu.Unlock()
	if udp != nil {
		udp.Close()
	}
	if conn != nil {
		conn.CloseWithError(quic.ApplicationErrorCode(wire.CodeInternal), "killed") // cannot be sent: the socket is closed
	}
}

func (a *Agent) isKilled() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.killed
}

// session runs one connection: dial, hello, serve until it ends or ctx
// asks for a drain.
func (a *Agent) session(ctx context.Context) error {
	raddr, err := net.ResolveUDPAddr("udp", a.cfg.Coordinator)
	if err != nil {
		return err
	}
	udp, err := net.ListenUDP("udp", nil)
	if err != nil {
		return err
	}
	tr := &quic.Transport{Conn: udp}
	defer func() {
		tr.Close()
		udp.Close()
	}()
	a.mu.Lock()
	if a.killed {
		a.mu.Unlock()
		return nil
	}
	a.udp = udp
	a.draining = false
	a.mu.Unlock()

	dctx, cancel := context.WithTimeout(ctx, handshakeTimeout)
	defer cancel()
	tlsConf := a.cfg.Identity.ClientConfig(wire.ALPN, a.cfg.Pin)
	conn, err := tr.Dial(dctx, raddr, tlsConf, &quic.Config{
		MaxIdleTimeout:     a.cfg.IdleTimeout,
		KeepAlivePeriod:    a.cfg.IdleTimeout / 3,
		MaxIncomingStreams: 1024,
	})
	if err != nil {
		return fmt.Errorf("dialing %s: %w", a.cfg.Coordinator, err)
	}
	a.mu.Lock()
	a.conn = conn
	killed := a.killed
	a.mu.Unlock()
	defer func() {
		a.mu.Lock()
		a.conn, a.udp = nil, nil
		a.mu.Unlock()
	}()
	if killed {
		return nil
	}
	ctrl, interval, err := a.hello(dctx, conn)
	if err != nil {
		conn.CloseWithError(quic.ApplicationErrorCode(wire.CodeProtocol), "hello failed")
		return err
	}
	cancel()
	a.joined.Add(1)
	a.log.Info("joined the network", "coordinator", a.cfg.Coordinator, "heartbeat", interval)

	go a.readControl(conn, ctrl)
	go a.acceptStreams(conn)
	go a.heartbeats(conn, ctrl, interval)

	select {
	case <-conn.Context().Done():
		return connErr(context.Cause(conn.Context()))
	case <-a.killedCh:
		return nil
	case <-ctx.Done():
	}
	// drain: refuse new jobs, say so, let the running ones finish
	a.mu.Lock()
	a.draining = true
	n := a.inflight
	a.mu.Unlock()
	a.log.Info("draining: finishing in-flight jobs, refusing new ones", "in_flight", n, "timeout", a.cfg.DrainTimeout)
	a.heartbeat(ctrl, interval)
	deadline := time.Now().Add(a.cfg.DrainTimeout)
	for a.Active() > 0 && time.Now().Before(deadline) && conn.Context().Err() == nil {
		time.Sleep(20 * time.Millisecond)
	}
	if n := a.Active(); n > 0 {
		a.log.Warn("drain timed out: closing with jobs still running", "in_flight", n)
	}
	conn.CloseWithError(quic.ApplicationErrorCode(wire.CodeOK), "drained")
	return nil
}

// hello sends Hello and waits for Welcome.
func (a *Agent) hello(ctx context.Context, conn *quic.Conn) (*quic.Stream, time.Duration, error) {
	ctrl, err := conn.OpenStreamSync(ctx)
	if err != nil {
		return nil, 0, connErr(err)
	}
	h := a.cfg.Hello
	h.TokensPerSec = math.Float32frombits(a.tpsBits.Load())
	if err := wire.Write(ctrl, &h); err != nil {
		return nil, 0, connErr(err)
	}
	ctrl.SetReadDeadline(time.Now().Add(handshakeTimeout))
	m, err := wire.ReadMax(ctrl, wire.MaxControlFrame)
	ctrl.SetReadDeadline(time.Time{})
	if err != nil {
		return nil, 0, connErr(err)
	}
	switch m := m.(type) {
	case *wire.Welcome:
		if m.Version != wire.Version {
			return nil, 0, fmt.Errorf("%w: coordinator speaks version %d, this node %d", ErrRefused, m.Version, wire.Version)
		}
		iv := min(max(time.Duration(m.HeartbeatMillis)*time.Millisecond, minHeartbeat), maxHeartbeat)
		return ctrl, iv, nil
	case *wire.Error:
		return nil, 0, fmt.Errorf("%w: %v", ErrRefused, m)
	}
	return nil, 0, fmt.Errorf("coordinator answered hello with %s", m.Type())
}

// connErr turns a coordinator's close into a readable error.
func connErr(err error) error {
	var ae *quic.ApplicationError
	if errors.As(err, &ae) && ae.Remote {
		c := wire.Code(ae.ErrorCode)
		e := fmt.Errorf("coordinator closed the connection: %s: %s", c, ae.ErrorMessage)
		switch c {
		case wire.CodeNotAdmitted, wire.CodeQuarantined, wire.CodeVersion:
			return fmt.Errorf("%w: %v", ErrRefused, e)
		}
		return e
	}
	return err
}

// readControl logs what the coordinator says on the control stream.
func (a *Agent) readControl(conn *quic.Conn, ctrl *quic.Stream) {
	for {
		m, err := wire.ReadMax(ctrl, wire.MaxControlFrame)
		if err != nil {
			return
		}
		if e, ok := m.(*wire.Error); ok {
			a.log.Warn("coordinator", "code", e.Code, "msg", e.Message)
		}
	}
}

func (a *Agent) heartbeats(conn *quic.Conn, ctrl *quic.Stream, iv time.Duration) {
	t := time.NewTicker(iv)
	defer t.Stop()
	for {
		select {
		case <-conn.Context().Done():
			return
		case <-t.C:
			if err := a.heartbeat(ctrl, iv); err != nil {
				return
			}
		}
	}
}

func (a *Agent) heartbeat(ctrl *quic.Stream, iv time.Duration) error {
	st := a.cfg.Backend.Stats()
	a.mu.Lock()
	hb := wire.Heartbeat{Seq: a.hbSeq.Add(1), Active: uint32(st.Active), Queued: uint32(st.Queued), Draining: a.draining,
		TokensPerSec: math.Float32frombits(a.tpsBits.Load())}
	a.mu.Unlock()
	a.ctrlMu.Lock()
	defer a.ctrlMu.Unlock()
	ctrl.SetWriteDeadline(time.Now().Add(4 * iv))
	return wire.Write(ctrl, &hb)
}

func (a *Agent) acceptStreams(conn *quic.Conn) {
	for {
		s, err := conn.AcceptStream(conn.Context())
		if err != nil {
			return
		}
		go a.serve(conn, s)
	}
}

// begin counts a stream in, unless the node is draining.
func (a *Agent) begin() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.draining {
		return false
	}
	a.inflight++
	return true
}

func (a *Agent) end() {
	a.mu.Lock()
	a.inflight--
	a.mu.Unlock()
}

func (a *Agent) serve(conn *quic.Conn, s *quic.Stream) {
	s.SetReadDeadline(time.Now().Add(requestTimeout))
	m, err := wire.Read(s)
	s.SetReadDeadline(time.Time{})
	if err != nil {
		fail(s, wire.Errorf(wire.CodeProtocol, "reading the request: %v", err))
		return
	}
	if !a.begin() {
		fail(s, wire.Errorf(wire.CodeDraining, "the node is draining"))
		return
	}
	defer a.end()
	// The job lives as long as the connection and the stream: the
	// coordinator cancels by resetting the stream or stopping its reads.
	ctx, cancel := context.WithCancel(conn.Context())
	defer cancel()
	stop := context.AfterFunc(s.Context(), cancel)
	defer stop()
	go func() {
		// the request is the stream's only message: anything else, or a
		// reset, ends the job
		if _, err := io.Copy(io.Discard, s); err != nil {
			cancel()
		}
	}()
	switch m := m.(type) {
	case *wire.JobRequest:
		a.job(ctx, s, m)
	case *wire.VerifyRequest:
		a.verify(ctx, s, m)
	default:
		fail(s, wire.Errorf(wire.CodeProtocol, "unexpected %s on a new stream", m.Type()))
	}
}

// fail answers a stream with an error and closes it.
func fail(s *quic.Stream, e *wire.Error) {
	s.SetWriteDeadline(time.Now().Add(requestTimeout))
	wire.Write(s, e)
	s.Close()
	s.CancelRead(quic.StreamErrorCode(e.Code))
}

func (a *Agent) serves(model [32]byte) bool {
	for _, m := range a.cfg.Hello.Models {
		if m.SHA256 == model {
			return true
		}
	}
	return false
}

func (a *Agent) job(ctx context.Context, s *quic.Stream, r *wire.JobRequest) {
	if !a.serves(r.Model) {
		fail(s, wire.Errorf(wire.CodeWrongModel, "this node does not serve model %x", r.Model[:8]))
		return
	}
	p := r.Params.Engine()
	if err := p.Sampler.Validate(); err != nil {
		fail(s, wire.Errorf(wire.CodeBadRequest, "%v", err))
		return
	}
	if len(r.Prompt) == 0 {
		fail(s, wire.Errorf(wire.CodeBadRequest, "empty prompt"))
		return
	}
	for _, t := range r.Prompt {
		if a.cfg.Vocab > 0 && int(t) >= a.cfg.Vocab {
			fail(s, wire.Errorf(wire.CodeBadRequest, "token id %d is outside the vocabulary of %d", t, a.cfg.Vocab))
			return
		}
	}
	if r.Fingerprint && a.cfg.Fingerprint {
		requestFingerprint(&p)
	}
	var sent uint32
	buf := make([]byte, 0, 64)
	emit := func(t engine.Token) error {
		if t.ID < 0 {
			return nil // held-back text: the coordinator decodes tokens itself
		}
		var err error
		if buf, err = wire.AppendFrame(buf[:0], &wire.Tokens{IDs: []int32{t.ID}}); err != nil {
			return err
		}
		if _, err := s.Write(buf); err != nil {
			return err
		}
		sent++
		return nil
	}
	res, err := a.cfg.Backend.Generate(ctx, r.Prompt, p, emit)
	if err != nil {
		switch {
		case ctx.Err() != nil:
			s.CancelWrite(quic.StreamErrorCode(wire.CodeCancelled))
			s.CancelRead(quic.StreamErrorCode(wire.CodeCancelled))
		case errors.Is(err, engine.ErrQueueFull):
			fail(s, wire.Errorf(wire.CodeBusy, "%v", err))
		case errors.Is(err, engine.ErrContextFull):
			fail(s, wire.Errorf(wire.CodeContextFull, "%v", err))
		case errors.Is(err, engine.ErrClosed):
			fail(s, wire.Errorf(wire.CodeDraining, "%v", err))
		default:
			var se *quic.StreamError
			if errors.As(err, &se) {
				return // the coordinator went away mid-stream
			}
			a.log.Error("job failed", "job", r.ID, "err", err)
			fail(s, wire.Errorf(wire.CodeInternal, "%v", err))
		}
		return
	}
	end := &wire.JobEnd{Finish: res.Finish, PromptTokens: uint32(res.PromptTokens), Tokens: sent,
		PromptMicros: uint64(res.PromptTime.Microseconds()), DecodeMicros: uint64(res.DecodeTime.Microseconds())}
	if r.Fingerprint && a.cfg.Fingerprint {
		end.Proof = proofOf(res)
	}
	if len(end.Proof) > wire.MaxProof {
		a.log.Error("fingerprint over the wire limit: sent without it", "bytes", len(end.Proof))
		end.Proof = nil
	}
	if err := wire.Write(s, end); err != nil {
		return
	}
	s.Close()
	a.jobs.Add(1)
	if tps := res.TokensPerSecond(); len(res.Tokens) >= 8 && tps > 0 {
		old := float64(math.Float32frombits(a.tpsBits.Load()))
		if old > 0 {
			tps = 0.8*old + 0.2*tps
		}
		a.tpsBits.Store(math.Float32bits(float32(tps)))
	}
	a.log.Debug("job done", "job", r.ID, "prompt_tokens", len(r.Prompt), "tokens", sent, "finish", res.Finish)
}

func (a *Agent) verify(ctx context.Context, s *quic.Stream, r *wire.VerifyRequest) {
	switch {
	case a.cfg.Verifier == nil:
		fail(s, wire.Errorf(wire.CodeBadRequest, "this node does not verify"))
		return
	case !a.serves(r.Model):
		fail(s, wire.Errorf(wire.CodeWrongModel, "this node does not serve model %x", r.Model[:8]))
		return
	}
	t0 := time.Now()
	v, err := a.cfg.Verifier.Verify(ctx, verify.Check{Prompt: r.Prompt, Output: r.Output, Params: r.Params.Engine(), Proof: r.Proof})
	if err != nil {
		if ctx.Err() == nil {
			fail(s, wire.Errorf(wire.CodeInternal, "verification failed to run: %v", err))
		}
		return
	}
	if err := wire.Write(s, &wire.VerifyResult{ID: r.ID, OK: v.OK, Reason: wire.Truncate(v.Reason, wire.MaxString), Micros: uint64(time.Since(t0).Microseconds())}); err == nil {
		s.Close()
	}
}
