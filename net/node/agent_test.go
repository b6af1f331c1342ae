package node_test

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/stokehq/stoke/engine"
	"github.com/stokehq/stoke/net/identity"
	"github.com/stokehq/stoke/net/node"
	"github.com/stokehq/stoke/net/verify"
	"github.com/stokehq/stoke/net/wire"
)

var quiet = slog.New(slog.DiscardHandler)

// fakeBackend "generates" the prompt's tokens plus one, slowly if asked.
type fakeBackend struct {
	delay  atomic.Int64
	active atomic.Int32
}

func (b *fakeBackend) Generate(ctx context.Context, prompt []int32, p engine.GenerateParams, emit func(engine.Token) error) (*engine.Result, error) {
	b.active.Add(1)
	defer b.active.Add(-1)
	res := &engine.Result{PromptTokens: len(prompt), Finish: engine.FinishLength}
	for i := range p.MaxTokens {
		select {
		case <-ctx.Done():
			return res, ctx.Err()
		case <-time.After(time.Duration(b.delay.Load())):
		}
		id := prompt[i%len(prompt)] + 1
		res.Tokens = append(res.Tokens, id)
		if err := emit(engine.Token{ID: id, Text: "x"}); err != nil {
			return res, err
		}
	}
	if p.Fingerprint {
		res.Fingerprint = []byte("proof")
	}
	return res, nil
}

func (b *fakeBackend) Stats() engine.SchedulerStats {
	return engine.SchedulerStats{Slots: 1, Active: int(b.active.Load())}
}

type fakeVerifier struct{}

func (fakeVerifier) Verify(_ context.Context, c verify.Check) (verify.Verdict, error) {
	return verify.Verdict{OK: string(c.Proof) == "proof", Reason: "fake"}, nil
}

var model = wire.ModelInfo{SHA256: [32]byte{1}, Arch: "llama", Name: "m", Context: 128}

// fakeCoordinator accepts one node at a time and hands its connection
// to the test.
type fakeCoordinator struct {
	id    *identity.Identity
	ln    *quic.Listener
	conns chan *quic.Conn
	hello chan *wire.Hello
}

func listen(t *testing.T, addr string) *fakeCoordinator {
	t.Helper()
	id, _ := identity.Generate()
	ln, err := quic.ListenAddr(addr, id.ServerConfig(wire.ALPN), &quic.Config{})
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeCoordinator{id: id, ln: ln, conns: make(chan *quic.Conn, 4), hello: make(chan *wire.Hello, 4)}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept(context.Background())
			if err != nil {
				return
			}
			ctrl, err := conn.AcceptStream(context.Background())
			if err != nil {
				continue
			}
			m, err := wire.Read(ctrl)
			if err != nil {
				continue
			}
			f.hello <- m.(*wire.Hello)
			wire.Write(ctrl, &wire.Welcome{Version: wire.Version, HeartbeatMillis: 50})
			f.conns <- conn
		}
	}()
	return f
}

// job runs one job request on conn and returns the tokens and the end.
func job(t *testing.T, conn *quic.Conn, req *wire.JobRequest) ([]int32, wire.Message) {
	t.Helper()
	s, err := conn.OpenStreamSync(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := wire.Write(s, req); err != nil {
		t.Fatal(err)
	}
	s.Close()
	var toks []int32
	for {
		m, err := wire.Read(s)
		if err != nil {
			t.Fatalf("reading the job stream: %v", err)
		}
		if tk, ok := m.(*wire.Tokens); ok {
			toks = append(toks, tk.IDs...)
			continue
		}
		return toks, m
	}
}

func freeUDPAddr(t *testing.T) string {
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().String()
}

// TestAgent: the node redials until the coordinator is up, advertises,
// serves jobs with fingerprints, refuses wrong models, verifies, and
// drains.
func TestAgent(t *testing.T) {
	addr := freeUDPAddr(t)
	id, _ := identity.Generate()
	be := &fakeBackend{}
	a, err := node.New(node.Config{Coordinator: addr, Identity: id, Backend: be, Verifier: fakeVerifier{}, Fingerprint: true,
		Hello:      wire.Hello{Name: "n1", Models: []wire.ModelInfo{model}, Slots: 1, TokensPerSec: 10},
		MinBackoff: 20 * time.Millisecond, MaxBackoff: 80 * time.Millisecond, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	time.Sleep(150 * time.Millisecond) // a few failed dials first
	f := listen(t, addr)
	var conn *quic.Conn
	select {
	case conn = <-f.conns:
	case <-time.After(5 * time.Second):
		t.Fatal("the node never joined")
	}
	h := <-f.hello
	if h.Version != wire.Version || h.Name != "n1" || !h.Verifier || len(h.Models) != 1 || h.Models[0] != model {
		t.Fatalf("hello: %+v", h)
	}
	k, err := identity.PeerKeyOf(conn.ConnectionState().TLS)
	if err != nil || k != id.Pub {
		t.Fatalf("the node's TLS key %s, %v; want %s", k.Short(), err, id.Pub.Short())
	}

	params := wire.Params{MaxTokens: 5, Sampler: wire.Sampler{TopP: 1, RepeatPenalty: 1}}
	toks, end := job(t, conn, &wire.JobRequest{ID: 1, Model: model.SHA256, Prompt: []int32{10, 20}, Params: params, Fingerprint: true})
	je, ok := end.(*wire.JobEnd)
	if !ok || len(toks) != 5 || je.Tokens != 5 || string(je.Proof) != "proof" || je.Finish != engine.FinishLength {
		t.Fatalf("job: tokens %v, end %+v", toks, end)
	}

	_, end = job(t, conn, &wire.JobRequest{ID: 2, Model: [32]byte{9}, Prompt: []int32{1}, Params: params})
	if e, ok := end.(*wire.Error); !ok || e.Code != wire.CodeWrongModel {
		t.Fatalf("wrong model: %+v", end)
	}
	bad := params
	bad.Sampler.TopP = 0
	_, end = job(t, conn, &wire.JobRequest{ID: 3, Model: model.SHA256, Prompt: []int32{1}, Params: bad})
	if e, ok := end.(*wire.Error); !ok || e.Code != wire.CodeBadRequest {
		t.Fatalf("bad params: %+v", end)
	}

	// verification
	s, _ := conn.OpenStreamSync(context.Background())
	wire.Write(s, &wire.VerifyRequest{ID: 4, Model: model.SHA256, Prompt: []int32{1}, Output: []int32{2}, Params: params, Proof: []byte("proof")})
	s.Close()
	m, err := wire.Read(s)
	if vr, ok := m.(*wire.VerifyResult); err != nil || !ok || !vr.OK || vr.ID != 4 {
		t.Fatalf("verify: %+v %v", m, err)
	}

	// drain: a slow job in flight finishes, a new one is refused, then
	// the node closes the connection and Run returns
	be.delay.Store(int64(30 * time.Millisecond))
	type result struct {
		toks []int32
		end  wire.Message
	}
	slow := make(chan result, 1)
	go func() {
		toks, end := job(t, conn, &wire.JobRequest{ID: 5, Model: model.SHA256, Prompt: []int32{1}, Params: wire.Params{MaxTokens: 10, Sampler: params.Sampler}})
		slow <- result{toks, end}
	}()
	for be.active.Load() == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	time.Sleep(50 * time.Millisecond)
	_, end = job(t, conn, &wire.JobRequest{ID: 6, Model: model.SHA256, Prompt: []int32{1}, Params: params})
	if e, ok := end.(*wire.Error); !ok || e.Code != wire.CodeDraining {
		t.Fatalf("a job during the drain: %+v", end)
	}
	r := <-slow
	if _, ok := r.end.(*wire.JobEnd); !ok || len(r.toks) != 10 {
		t.Fatalf("the in-flight job during the drain: %d tokens, %+v", len(r.toks), r.end)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after the drain")
	}
	<-conn.Context().Done()
	var ae *quic.ApplicationError
	if !errors.As(context.Cause(conn.Context()), &ae) || wire.Code(ae.ErrorCode) != wire.CodeOK {
		t.Fatalf("the drained node closed with %v", context.Cause(conn.Context()))
	}
}

// TestAgentPinning: a node pinned to another coordinator key does not
// join.
func TestAgentPinning(t *testing.T) {
	f := listen(t, "127.0.0.1:0")
	id, _ := identity.Generate()
	other, _ := identity.Generate()
	a, err := node.New(node.Config{Coordinator: f.ln.Addr().String(), Identity: id, Backend: &fakeBackend{},
		Pin:   identity.Pin("", "x", &other.Pub),
		Hello: wire.Hello{Models: []wire.ModelInfo{model}}, MinBackoff: 20 * time.Millisecond, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	a.Run(ctx)
	if a.Joins() != 0 {
		t.Fatal("joined a coordinator with an unpinned key")
	}
	select {
	case <-f.conns:
		t.Fatal("the coordinator got a connection")
	default:
	}
}
