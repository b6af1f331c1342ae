// Package coord is the coordinator of a Stoke network: it admits nodes
// (mutual TLS 1.3 over QUIC, ed25519 keys registered in its ledger, or
// any key in open mode), tracks their liveness by heartbeats, routes the
// requests of an OpenAI-compatible gateway to them by load and measured
// speed, resumes an answer on another node when one is lost mid-stream,
// spot-checks a random sample of jobs by fingerprint, slashes and
// quarantines cheaters, and keeps nodes, stakes, reputation, jobs and
// checks in a crash-safe bbolt ledger.
package coord

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/stokehq/stoke/models/tokenizer"
	"github.com/stokehq/stoke/net/identity"
	"github.com/stokehq/stoke/net/verify"
	"github.com/stokehq/stoke/net/wire"
)

// Defaults.
const (
	DefaultHeartbeat         = 2 * time.Second
	DefaultMissedBeats       = 4
	DefaultFirstTokenTimeout = 2 * time.Minute
	DefaultTokenTimeout      = 30 * time.Second
	DefaultMaxAttempts       = 3
	DefaultIdleTimeout       = 30 * time.Second
	DefaultCheckQueue        = 256
	DefaultNodeWait          = 3 * time.Second
	helloTimeout             = 10 * time.Second
)

// Verification modes.
const (
	VerifyAuto  = "auto"  // the coordinator's engine when it has one, else a random node
	VerifyLocal = "local" // the coordinator's engine only
	VerifyNodes = "nodes" // a random node other than the job's (failures confirmed locally when possible)
)

// Config configures a Coordinator.
type Config struct {
	Listen   string // QUIC UDP address, e.g. ":7070"
	Identity *identity.Identity
	Ledger   *Ledger
	// Open admits any key (recorded with OpenStake); otherwise only keys
	// admitted in the ledger may join.
	Open      bool
	OpenStake int64
	// MinStake is the stake a key needs to join (outside open mode); a
	// node slashed below it is disconnected.
	MinStake int64

	Model wire.ModelInfo       // the model the gateway serves
	Tok   *tokenizer.Tokenizer // its tokenizer (nodes send ids; the gateway decodes)

	Verifier verify.Verifier // the coordinator's own engine (nil: none)
	VerifyBy string          // VerifyAuto (default), VerifyLocal or VerifyNodes
	Policy   Policy          // zero: DefaultPolicy

	Heartbeat         time.Duration // how often nodes report (0: default)
	MissedBeats       int           // heartbeats missed before a node is dropped (0: default)
	FirstTokenTimeout time.Duration // a job's first token (prefill) (0: default)
	TokenTimeout      time.Duration // between tokens (0: default)
	MaxAttempts       int           // nodes tried per request (0: default)
	IdleTimeout       time.Duration // QUIC idle timeout (0: default)
	CheckQueue        int           // checks waiting to run before new ones are dropped (0: default)
	// NodeWait is how long a request waits for a node to (re)join when
	// none can take it, before it is answered 503 (0: default; < 0: no wait).
	NodeWait time.Duration

	// Seed seeds the check sampler and tie-breaking (0: random). Nodes
	// must not be able to predict which jobs are checked: leave it 0
	// outside tests.
	Seed   uint64
	Name   string // told to nodes in Welcome
	Logger *slog.Logger
}

// Coordinator is a running coordinator.
type Coordinator struct {
	cfg    Config
	log    *slog.Logger
	udp    *net.UDPConn
	tr     *quic.Transport
	ln     *quic.Listener
	reg    *registry
	ledger *Ledger
	gw     *Gateway
	checks *checker

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	closed sync.Once
}

// New checks cfg; Start listens.
func New(cfg Config) (*Coordinator, error) {
	switch {
	case cfg.Identity == nil:
		return nil, errors.New("coord: no identity")
	case cfg.Ledger == nil:
		return nil, errors.New("coord: no ledger")
	case cfg.Tok == nil:
		return nil, errors.New("coord: no tokenizer")
	case cfg.Model.SHA256 == [32]byte{}:
		return nil, errors.New("coord: no model identity")
	}
	if cfg.Policy == (Policy{}) {
		cfg.Policy = DefaultPolicy
	}
	if err := cfg.Policy.Validate(); err != nil {
		return nil, fmt.Errorf("coord: %w", err)
	}
	switch cfg.VerifyBy {
	case "":
		cfg.VerifyBy = VerifyAuto
	case VerifyAuto, VerifyNodes:
	case VerifyLocal:
		if cfg.Verifier == nil {
			return nil, errors.New("coord: verification by the coordinator needs its engine (a model)")
		}
	default:
		return nil, fmt.Errorf("coord: verification mode %q: want auto, local or nodes", cfg.VerifyBy)
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&cfg.Heartbeat, DefaultHeartbeat)
	def(&cfg.FirstTokenTimeout, DefaultFirstTokenTimeout)
	def(&cfg.TokenTimeout, DefaultTokenTimeout)
	def(&cfg.IdleTimeout, DefaultIdleTimeout)
	if cfg.NodeWait == 0 {
		cfg.NodeWait = DefaultNodeWait
	}
	if cfg.MissedBeats <= 0 {
		cfg.MissedBeats = DefaultMissedBeats
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = DefaultMaxAttempts
	}
	if cfg.CheckQueue <= 0 {
		cfg.CheckQueue = DefaultCheckQueue
	}
	if cfg.Seed == 0 {
		var b [8]byte
		rand.Read(b[:])
		cfg.Seed = binary.LittleEndian.Uint64(b[:]) | 1
	}
	if cfg.Name == "" {
		cfg.Name = "stoke-coordinator " + cfg.Identity.Pub.Short()
	}
	c := &Coordinator{cfg: cfg, log: cfg.Logger, ledger: cfg.Ledger, reg: newRegistry(cfg.Seed)}
	if c.log == nil {
		c.log = slog.Default()
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.checks = newChecker(c)
	c.gw = &Gateway{c: c}
	return c, nil
}

// Start listens for nodes and starts the liveness monitor and the check
// worker.
func (c *Coordinator) Start() error {
	ua, err := net.ResolveUDPAddr("udp", c.cfg.Listen)
	if err != nil {
		return fmt.Errorf("coord: %w", err)
	}
	udp, err := net.ListenUDP("udp", ua)
	if err != nil {
		return fmt.Errorf("coord: listening on %s: %w", c.cfg.Listen, err)
	}
	c.udp, c.tr = udp, &quic.Transport{Conn: udp}
	ln, err := c.tr.Listen(c.cfg.Identity.ServerConfig(wire.ALPN), &quic.Config{
		MaxIdleTimeout:        c.cfg.IdleTimeout,
		KeepAlivePeriod:       c.cfg.IdleTimeout / 3,
		MaxIncomingStreams:    1, // a node opens its control stream only
		MaxIncomingUniStreams: -1,
	})
	if err != nil {
		c.tr.Close()
		udp.Close()
		return fmt.Errorf("coord: listening on %s: %w", c.cfg.Listen, err)
	}
	c.ln = ln
	c.log.Info("coordinator listening", "quic", ln.Addr().String(), "key", c.cfg.Identity.Pub.String(), "open", c.cfg.Open,
		"model", shaShort(c.cfg.Model.SHA256), "verify_p", c.cfg.Policy.P, "verify_by", c.cfg.VerifyBy)
	c.wg.Add(3)
	go c.accept()
	go c.monitor()
	go c.checks.run()
	return nil
}

// Addr is the QUIC listener's address.
func (c *Coordinator) Addr() net.Addr { return c.ln.Addr() }

// Gateway is the openai.Backend that routes to the nodes.
func (c *Coordinator) Gateway() *Gateway { return c.gw }

// Ledger is the coordinator's ledger.
func (c *Coordinator) Ledger() *Ledger { return c.ledger }

// Nodes lists the connected nodes.
func (c *Coordinator) Nodes() []NodeStatus { return c.reg.status() }

// PendingChecks is the number of spot checks queued or running.
func (c *Coordinator) PendingChecks() int { return c.checks.pending() }

// Close disconnects every node, stops the workers (a running check
// finishes) and returns; the ledger stays open (its owner closes it).
func (c *Coordinator) Close() error {
	c.closed.Do(func() {
		c.cancel()
		if c.ln != nil {
			c.ln.Close()
		}
		for _, p := range c.reg.all() {
			p.conn.CloseWithError(quic.ApplicationErrorCode(wire.CodeOK), "coordinator shutting down")
		}
		c.wg.Wait()
		if c.tr != nil {
			c.tr.Close()
			c.udp.Close()
		}
	})
	return nil
}

func (c *Coordinator) accept() {
	defer c.wg.Done()
	for {
		conn, err := c.ln.Accept(c.ctx)
		if err != nil {
			return
		}
		go c.serveConn(conn)
	}
}

// refuse closes a connection with a code and a reason the node logs.
func refuse(conn *quic.Conn, code wire.Code, format string, a ...any) {
	conn.CloseWithError(quic.ApplicationErrorCode(code), fmt.Sprintf(format, a...))
}

// admit decides whether key may join and records that it was seen.
func (c *Coordinator) admit(key identity.PublicKey, name string) (wire.Code, string, error) {
	code, why := wire.CodeOK, ""
	err := c.ledger.Update(func(t *Tx) error {
		r, ok, err := t.Node(key)
		if err != nil {
			return err
		}
		now := time.Now()
		switch {
		case ok && r.Quarantined:
			code, why = wire.CodeQuarantined, fmt.Sprintf("key %s is quarantined since %s: %s", key.Short(), r.QuarantinedAt.Format(time.RFC3339), r.Why)
			return nil
		case ok && r.Admitted && !c.cfg.Open && r.Stake < c.cfg.MinStake:
			code, why = wire.CodeNotAdmitted, fmt.Sprintf("key %s has a stake of %d, below the minimum of %d", key.Short(), r.Stake, c.cfg.MinStake)
			return nil
		case ok && r.Admitted:
		case c.cfg.Open:
			if !ok {
				r = NodeRecord{Key: key, FirstSeen: now, Stake: c.cfg.OpenStake}
			}
			r.Admitted = true
		default:
			code, why = wire.CodeNotAdmitted, fmt.Sprintf("key %s is not admitted on this coordinator (the operator runs: stoke coordinator admit --data DIR %s)", key.Short(), key)
			return nil
		}
		if r.FirstSeen.IsZero() {
			r.FirstSeen = now
		}
		r.LastSeen, r.Name = now, name
		return t.PutNode(r)
	})
	return code, why, err
}

func (c *Coordinator) serveConn(conn *quic.Conn) {
	key, err := identity.PeerKeyOf(conn.ConnectionState().TLS)
	if err != nil {
		refuse(conn, wire.CodeProtocol, "%v", err)
		return
	}
	log := c.log.With("node", key.Short(), "addr", conn.RemoteAddr().String())
	ctx, cancel := context.WithTimeout(c.ctx, helloTimeout)
	defer cancel()
	// the key is checked before the node may say anything
	if code, why, err := c.admit(key, ""); err != nil || code != wire.CodeOK {
		if err != nil {
			log.Error("ledger", "err", err)
			refuse(conn, wire.CodeInternal, "coordinator ledger error")
			return
		}
		log.Warn("refused a node", "code", code, "why", why)
		refuse(conn, code, "%s", why)
		return
	}
	ctrl, err := conn.AcceptStream(ctx)
	if err != nil {
		refuse(conn, wire.CodeProtocol, "no control stream")
		return
	}
	ctrl.SetReadDeadline(time.Now().Add(helloTimeout))
	m, err := wire.ReadMax(ctrl, wire.MaxControlFrame)
	ctrl.SetReadDeadline(time.Time{})
	if err != nil {
		refuse(conn, wire.CodeProtocol, "reading hello: %v", err)
		return
	}
	h, ok := m.(*wire.Hello)
	if !ok {
		refuse(conn, wire.CodeProtocol, "expected hello, got %s", m.Type())
		return
	}
	if h.Version != wire.Version {
		wire.Write(ctrl, wire.Errorf(wire.CodeVersion, "this coordinator speaks version %d, the node %d", wire.Version, h.Version))
		refuse(conn, wire.CodeVersion, "version %d unsupported", h.Version)
		return
	}
	if _, _, err := c.admit(key, h.Name); err != nil {
		log.Error("ledger", "err", err)
	}
	p := &peer{key: key, conn: conn, hello: *h, joined: time.Now()}
	if _, ok := p.serves(c.cfg.Model.SHA256); !ok {
		log.Warn("node serves none of this coordinator's models: it gets no jobs", "name", h.Name, "models", len(h.Models))
	}
	if err := wire.Write(ctrl, &wire.Welcome{Version: wire.Version, HeartbeatMillis: uint32(c.cfg.Heartbeat.Milliseconds()), Coordinator: c.cfg.Name}); err != nil {
		conn.CloseWithError(quic.ApplicationErrorCode(wire.CodeProtocol), "")
		return
	}
	if old := c.reg.add(p); old != nil {
		old.conn.CloseWithError(quic.ApplicationErrorCode(wire.CodeReplaced), "the same key connected again")
	}
	log.Info("node joined", "name", h.Name, "gpu", h.Hardware.GPU, "vram", h.Hardware.VRAM, "cpu", h.Hardware.CPU,
		"ram", h.Hardware.RAM, "slots", h.Slots, "tokens_per_s", h.TokensPerSec)
	defer func() {
		if c.reg.remove(p) {
			log.Info("node left", "cause", context.Cause(conn.Context()))
		}
	}()
	for {
		m, err := wire.ReadMax(ctrl, wire.MaxControlFrame)
		if err != nil {
			conn.CloseWithError(quic.ApplicationErrorCode(wire.CodeProtocol), "control stream ended")
			return
		}
		hb, ok := m.(*wire.Heartbeat)
		if !ok {
			refuse(conn, wire.CodeProtocol, "unexpected %s on the control stream", m.Type())
			return
		}
		c.reg.heartbeat(p, hb)
	}
}

// monitor drops nodes that missed MissedBeats heartbeats: they leave
// the rotation and their connection is closed, which fails their
// in-flight jobs over to other nodes at once.
func (c *Coordinator) monitor() {
	defer c.wg.Done()
	t := time.NewTicker(c.cfg.Heartbeat / 2)
	defer t.Stop()
	limit := time.Duration(c.cfg.MissedBeats) * c.cfg.Heartbeat
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-t.C:
		}
		for _, p := range c.reg.stale(time.Now().Add(-limit)) {
			c.reg.setOut(p)
			c.reg.remove(p)
			c.log.Warn("node missed its heartbeats: out of rotation", "node", p.key.Short(), "limit", limit)
			refuse(p.conn, wire.CodeTimeout, "no heartbeat for %s", limit)
		}
	}
}

// quarantine takes a node out of rotation and disconnects it (the
// ledger already records it).
func (c *Coordinator) quarantine(key identity.PublicKey, why string) {
	if p := c.reg.get(key); p != nil {
		c.reg.setOut(p)
		c.reg.remove(p)
		refuse(p.conn, wire.CodeQuarantined, "quarantined: %s", why)
	}
}

func shaShort(s [32]byte) string { return hex.EncodeToString(s[:8]) }

// Identity is the coordinator's identity.
func (c *Coordinator) Identity() *identity.Identity { return c.cfg.Identity }
