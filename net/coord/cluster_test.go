package coord_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/stokehq/stoke/engine"
	"github.com/stokehq/stoke/models/dtype"
	"github.com/stokehq/stoke/models/synth"
	"github.com/stokehq/stoke/net/coord"
	"github.com/stokehq/stoke/net/identity"
	"github.com/stokehq/stoke/net/modelid"
	"github.com/stokehq/stoke/net/node"
	"github.com/stokehq/stoke/net/openai"
	"github.com/stokehq/stoke/net/verify"
	"github.com/stokehq/stoke/net/wire"
)

const (
	ctxTokens = 512
	heartbeat = 100 * time.Millisecond
	missed    = 10
	modelName = "synth"
)

// testLog logs to stderr with STOKE_TEST_LOG=1 (the cluster is chatty).
func testLog() *slog.Logger {
	if os.Getenv("STOKE_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

var (
	synthMu    sync.Mutex
	synthPaths = map[uint64]string{}
	synthDir   string
)

// synthModel writes a small synthetic llama once per seed per test
// binary: seed 1 is the network's model, seed 2 a cheater's stand-in
// (same shape and vocabulary, other weights).
func synthModel(t testing.TB, seed uint64) *engine.Model {
	t.Helper()
	synthMu.Lock()
	defer synthMu.Unlock()
	p, ok := synthPaths[seed]
	if !ok {
		if synthDir == "" {
			d, err := os.MkdirTemp("", "stoke-coord-test")
			if err != nil {
				t.Fatal(err)
			}
			synthDir = d
		}
		p = filepath.Join(synthDir, fmt.Sprintf("m%d.gguf", seed))
		if err := synth.Write(p, synth.Config{Arch: "llama", Params: 3e6, Type: dtype.Q8_0, Seed: seed}); err != nil {
			t.Fatal(err)
		}
		synthPaths[seed] = p
	}
	m, err := engine.Load(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func TestMain(m *testing.M) {
	code := m.Run()
	if synthDir != "" {
		os.RemoveAll(synthDir)
	}
	os.Exit(code)
}

// slowBackend delays each token by a shared, adjustable amount, so a test
// can catch a job mid-stream.
type slowBackend struct {
	*engine.Scheduler
	delay *atomic.Int64
}

func (b slowBackend) Generate(ctx context.Context, prompt []int32, p engine.GenerateParams, emit func(engine.Token) error) (*engine.Result, error) {
	return b.Scheduler.Generate(ctx, prompt, p, func(t engine.Token) error {
		if d := time.Duration(b.delay.Load()); d > 0 {
			time.Sleep(d)
		}
		return emit(t)
	})
}

type testNode struct {
	killed bool
	name   string
	id     *identity.Identity
	agent  *node.Agent
	cancel context.CancelFunc
	done   chan struct{}
}

type cluster struct {
	t        *testing.T
	dir      string
	model    *engine.Model
	info     wire.ModelInfo
	policy   coord.Policy
	ledger   *coord.Ledger
	co       *coord.Coordinator
	http     *httptest.Server
	addr     string
	delay    atomic.Int64
	nodes    []*testNode
	log      *slog.Logger
	mode     string
	minStake int64
}

func newCluster(t *testing.T, policy coord.Policy) *cluster {
	return newClusterBy(t, policy, coord.VerifyAuto)
}

// newClusterBy starts a coordinator verifying by mode; with VerifyNodes it
// has no engine of its own.
func newClusterBy(t *testing.T, policy coord.Policy, mode string) *cluster {
	return newClusterWith(t, policy, mode, 0)
}

func newClusterWith(t *testing.T, policy coord.Policy, mode string, minStake int64) *cluster {
	c := &cluster{t: t, dir: t.TempDir(), model: synthModel(t, 1), policy: policy, log: testLog(), mode: mode, minStake: minStake}
	info, err := modelid.Of(c.model, modelName, ctxTokens, "")
	if err != nil {
		t.Fatal(err)
	}
	c.info = info
	c.startCoordinator("127.0.0.1:0")
	t.Cleanup(c.stop)
	return c
}

func (c *cluster) startCoordinator(listen string) {
	t := c.t
	l, err := coord.OpenLedger(filepath.Join(c.dir, "ledger.db"))
	if err != nil {
		t.Fatal(err)
	}
	c.ledger = l
	id, _, err := identity.LoadOrCreate(filepath.Join(c.dir, "coordinator"))
	if err != nil {
		t.Fatal(err)
	}
	var v verify.Verifier
	if c.mode != coord.VerifyNodes {
		ev := verify.NewEngine(c.model, engine.Options{Context: ctxTokens, Threads: 1})
		ev.RequireProof(true)
		t.Cleanup(ev.Close)
		v = ev
	}
	co, err := coord.New(coord.Config{
		Listen: listen, Identity: id, Ledger: l, Model: c.info, Tok: c.model.Tok,
		Verifier: v, VerifyBy: c.mode, Policy: c.policy, MinStake: c.minStake, Heartbeat: heartbeat, MissedBeats: missed,
		FirstTokenTimeout: 10 * time.Second, TokenTimeout: 10 * time.Second, Seed: 7, Logger: c.log,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := co.Start(); err != nil {
		t.Fatal(err)
	}
	c.co = co
	c.addr = co.Addr().String()
	api, err := openai.NewServer(openai.Config{ModelName: modelName, Backend: co.Gateway(), Tok: c.model.Tok, ContextTokens: ctxTokens, Logger: c.log})
	if err != nil {
		t.Fatal(err)
	}
	c.http = httptest.NewServer(co.Handler(api))
}

// stopCoordinator closes the coordinator, its HTTP server and its ledger.
func (c *cluster) stopCoordinator() {
	if c.co == nil {
		return
	}
	c.http.CloseClientConnections()
	c.http.Close()
	c.co.Close()
	c.ledger.Close()
	c.co = nil
}

func (c *cluster) stop() {
	for _, n := range c.nodes {
		n.cancel()
		<-n.done
	}
	c.stopCoordinator()
}

// addNode starts a node serving m (advertised as the network's model,
// whatever m is) with a key admitted with stake.
func (c *cluster) addNode(name string, m *engine.Model, stake int64) *testNode {
	t := c.t
	id, err := identity.Generate()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.ledger.Admit(id.Pub, name, stake); err != nil {
		t.Fatal(err)
	}
	sched, err := engine.NewScheduler(m, engine.SchedulerOptions{Parallel: 2, Context: ctxTokens, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sched.Close)
	v := verify.NewEngine(m, engine.Options{Context: ctxTokens, Threads: 1})
	v.RequireProof(true)
	t.Cleanup(v.Close)
	coordKey := c.co.Identity().Pub
	a, err := node.New(node.Config{
		Coordinator: c.addr, Identity: id, Pin: identity.Pin("", c.addr, &coordKey),
		Hello:   wire.Hello{Name: name, Hardware: node.DetectHardware(0), Models: []wire.ModelInfo{c.info}, Slots: 2, TokensPerSec: 1000},
		Backend: slowBackend{sched, &c.delay}, Vocab: m.Config.Vocab, Verifier: v, Fingerprint: true,
		MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond, IdleTimeout: 5 * time.Second, Logger: c.log.With("name", name),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n := &testNode{name: name, id: id, agent: a, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(n.done)
		a.Run(ctx)
	}()
	c.nodes = append(c.nodes, n)
	return n
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (c *cluster) connected(k identity.PublicKey) bool {
	for _, n := range c.co.Nodes() {
		if n.Key == k && n.InRotation {
			return true
		}
	}
	return false
}

type completion struct {
	Choices []struct {
		Text         string `json:"text"`
		FinishReason string `json:"finish_reason"`
	} `json:"choices"`
	Error *struct {
		Message string `json:"message"`
	} `json:"error"`
}

func (c *cluster) complete(prompt string, maxTokens int) (string, int, error) {
	body := fmt.Sprintf(`{"model":%q,"prompt":%q,"max_tokens":%d,"temperature":0,"ignore_eos":true}`, modelName, prompt, maxTokens)
	resp, err := http.Post(c.http.URL+"/v1/completions", "application/json", strings.NewReader(body))
	if err != nil {
		return "", 0, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return "", resp.StatusCode, fmt.Errorf("HTTP %d: %s", resp.StatusCode, b)
	}
	var out completion
	if err := json.Unmarshal(b, &out); err != nil {
		return "", resp.StatusCode, err
	}
	return out.Choices[0].Text, resp.StatusCode, nil
}

// direct is the greedy answer of the model itself.
func (c *cluster) direct(prompt string, maxTokens int) string {
	s, err := c.model.NewSession(engine.Options{Context: ctxTokens, Threads: 1})
	if err != nil {
		c.t.Fatal(err)
	}
	defer s.Close()
	ids := c.model.Tok.Encode(prompt, true, true)
	res, err := s.Generate(context.Background(), ids, engine.GenerateParams{MaxTokens: maxTokens, IgnoreEOS: true,
		Sampler: engine.SamplerParams{TopP: 1, RepeatPenalty: 1}}, nil)
	if err != nil {
		c.t.Fatal(err)
	}
	return res.Text
}

func (c *cluster) record(k identity.PublicKey) coord.NodeRecord {
	r, ok, err := c.ledger.Record(k)
	if err != nil || !ok {
		c.t.Fatalf("no ledger record for %s: %v", k.Short(), err)
	}
	return r
}

func (c *cluster) jobsOf(k identity.PublicKey) int {
	jobs, err := c.ledger.JobRecords()
	if err != nil {
		c.t.Fatal(err)
	}
	n := 0
	for _, j := range jobs {
		if j.Node == k && strings.HasPrefix(j.Outcome, "done") {
			n++
		}
	}
	return n
}

// TestCluster is the acceptance test: a coordinator and three nodes on
// loopback QUIC, one of which cheats with another model.
func TestCluster(t *testing.T) {
	pol := coord.Policy{P: 0.5, Reward: 1, Penalty: 10, FalseReject: 0.01, Alpha: 1e-4}
	c := newCluster(t, pol)
	cheatModel := synthModel(t, 2)
	honest := []*testNode{c.addNode("honest-a", c.model, 100), c.addNode("honest-b", c.model, 100)}
	cheat := c.addNode("cheater", cheatModel, 100)
	for _, n := range c.nodes {
		waitFor(t, n.name+" to join", 5*time.Second, func() bool { return c.connected(n.id.Pub) })
	}

	t.Run("NotAdmitted", func(t *testing.T) { c.testNotAdmitted(t) })

	// Requests succeed while the cheater is in rotation; it is caught
	// within the expected number of its jobs.
	t.Run("CheaterQuarantined", func(t *testing.T) {
		// f failed checks quarantine; each of its jobs is checked with
		// probability p, so its jobs until quarantine are negative
		// binomial with mean f/p. bound: P(more than bound) < 1e-6.
		f := coord.FailuresToQuarantine(pol.FalseReject, pol.Alpha)
		bound := 30
		if tailP := 1 - negBinCDF(f, pol.P, bound); tailP > 1e-6 {
			t.Fatalf("bound %d too tight: P = %g", bound, tailP)
		}
		t.Logf("quarantine after %d failed checks, expected %.1f cheater jobs at p = %g (bound %d)",
			f, coord.ExpectedJobsToQuarantine(pol.P, 0, pol.FalseReject, pol.Alpha), pol.P, bound)
		for i := 0; ; i++ {
			if _, code, err := c.complete(fmt.Sprintf("Request %d: once upon a time", i), 8); err != nil {
				t.Fatalf("request %d: %d %v", i, code, err)
			}
			waitFor(t, "spot checks", 10*time.Second, func() bool { return c.co.PendingChecks() == 0 })
			if c.record(cheat.id.Pub).Quarantined {
				break
			}
			if n := c.jobsOf(cheat.id.Pub); n > bound {
				t.Fatalf("the cheater ran %d jobs without quarantine", n)
			}
		}
		r := c.record(cheat.id.Pub)
		t.Logf("cheater quarantined after %d jobs, %d checks (%d failed); stake %d (slashed %d), reputation %.2f: %s",
			c.jobsOf(cheat.id.Pub), r.Checks, r.Failed, r.Stake, r.Slashed, r.Reputation(), r.Why)
		if r.Failed < int64(f) || r.Slashed != int64(f)*pol.Penalty || r.Stake != 100-r.Slashed {
			t.Fatalf("slashing: %+v", r)
		}
		for _, h := range honest {
			hr := c.record(h.id.Pub)
			if hr.Failed != 0 || hr.Quarantined {
				t.Fatalf("honest node %s failed checks: %+v", h.name, hr)
			}
			t.Logf("%s: %d jobs, %d checks passed, reputation %.2f, balance %d", h.name, hr.Jobs, hr.Checks, hr.Reputation(), hr.Balance)
		}
		waitFor(t, "the cheater out of rotation", 2*time.Second, func() bool { return !c.connected(cheat.id.Pub) })
		checks, _ := c.ledger.CheckRecords()
		if len(checks) == 0 || !checks[len(checks)-1].Quarantined {
			t.Fatalf("the last check does not record the quarantine: %+v", checks)
		}
	})

	t.Run("NetworkEndpoints", func(t *testing.T) {
		var nodes struct {
			Connected []coord.NodeStatus `json:"connected"`
			Ledger    []struct {
				coord.NodeRecord
				Reputation float64 `json:"reputation"`
			} `json:"ledger"`
		}
		getJSON(t, c.http.URL+"/network/nodes", &nodes)
		if len(nodes.Connected) != 2 || len(nodes.Ledger) != 3 {
			t.Fatalf("/network/nodes: %d connected, %d records", len(nodes.Connected), len(nodes.Ledger))
		}
		for _, r := range nodes.Ledger {
			if (r.Key == cheat.id.Pub) != r.Quarantined {
				t.Fatalf("/network/nodes: %+v", r)
			}
		}
		var jobs []coord.JobRecord
		getJSON(t, c.http.URL+"/network/jobs?limit=3", &jobs)
		all, _ := c.ledger.JobRecords()
		if len(jobs) != 3 || jobs[2].ID != all[len(all)-1].ID {
			t.Fatalf("/network/jobs?limit=3: %+v", jobs)
		}
		var checks []coord.CheckRecord
		getJSON(t, c.http.URL+"/network/checks", &checks)
		if len(checks) == 0 || !checks[len(checks)-1].Quarantined {
			t.Fatalf("/network/checks: %+v", checks)
		}
	})

	t.Run("Correct", func(t *testing.T) {
		for i, prompt := range []string{"The little dog", "A star fell"} {
			got, _, err := c.complete(prompt, 24)
			if err != nil {
				t.Fatal(err)
			}
			if want := c.direct(prompt, 24); got != want {
				t.Fatalf("answer %d through the gateway differs from a direct greedy run:\n got %q\nwant %q", i, got, want)
			}
		}
	})

	t.Run("Concurrent", func(t *testing.T) {
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for i := range 8 {
			wg.Go(func() {
				prompt := fmt.Sprintf("Story %d:", i)
				got, _, err := c.complete(prompt, 16)
				if err == nil && got != c.direct(prompt, 16) {
					err = fmt.Errorf("%q: answer %q differs from a direct run", prompt, got)
				}
				errs <- err
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
	})

	t.Run("NodeKilledMidStream", func(t *testing.T) { c.testKill(t) })

	t.Run("CoordinatorRestart", func(t *testing.T) { c.testRestart(t, cheat) })
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}

// negBinCDF is P(the f-th success comes within n trials of probability p).
func negBinCDF(f int, p float64, n int) float64 {
	return 1 - binomCDF(n, f-1, p)
}

// binomCDF is P(Bin(n, p) ≤ k).
func binomCDF(n, k int, p float64) float64 {
	s, term := 0.0, 1.0
	for i := 0; i <= n; i++ {
		if i > 0 {
			term *= float64(n-i+1) / float64(i)
		}
		if i <= k {
			s += term * pow(p, i) * pow(1-p, n-i)
		}
	}
	return s
}

func pow(x float64, n int) float64 {
	r := 1.0
	for range n {
		r *= x
	}
	return r
}

// testNotAdmitted: a peer whose key is not admitted is refused with a
// reason, and does not appear among the nodes.
func (c *cluster) testNotAdmitted(t *testing.T) {
	stranger, _ := identity.Generate()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := quic.DialAddr(ctx, c.addr, stranger.ClientConfig(wire.ALPN, nil), &quic.Config{})
	if err != nil {
		t.Fatal(err)
	}
	s, err := conn.OpenStreamSync(ctx)
	if err == nil {
		wire.Write(s, &wire.Hello{Version: wire.Version, Name: "stranger", Models: []wire.ModelInfo{c.info}})
		_, err = wire.Read(s)
	}
	var ae *quic.ApplicationError
	if !errors.As(err, &ae) || wire.Code(ae.ErrorCode) != wire.CodeNotAdmitted {
		t.Fatalf("a stranger's key got %v, want a close with code not-admitted", err)
	}
	t.Logf("stranger refused: %s", ae.ErrorMessage)
	if c.connected(stranger.Pub) {
		t.Fatal("the stranger is in the registry")
	}
	// the agent reports the refusal and never joins
	a, err := node.New(node.Config{Coordinator: c.addr, Identity: stranger, Backend: slowBackend{}, Hello: wire.Hello{Models: []wire.ModelInfo{c.info}},
		MinBackoff: 50 * time.Millisecond, Logger: c.log})
	if err != nil {
		t.Fatal(err)
	}
	actx, acancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer acancel()
	a.Run(actx)
	if a.Joins() != 0 {
		t.Fatal("an agent with a stranger's key joined")
	}
	// a wrong ALPN (another protocol version) does not get a connection
	bad := stranger.ClientConfig("stoke/0", nil)
	if _, err := quic.DialAddr(ctx, c.addr, bad, &quic.Config{}); err == nil {
		t.Fatal("a peer speaking stoke/0 connected")
	}
}

// sseText streams a completion and returns its text, calling onChunk
// after each text event.
func (c *cluster) sseText(t *testing.T, prompt string, maxTokens int, onChunk func(n int)) (string, string) {
	body := fmt.Sprintf(`{"model":%q,"prompt":%q,"max_tokens":%d,"temperature":0,"ignore_eos":true,"stream":true}`, modelName, prompt, maxTokens)
	resp, err := http.Post(c.http.URL+"/v1/completions", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("HTTP %d: %s", resp.StatusCode, b)
	}
	var text strings.Builder
	finish := ""
	n := 0
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		if line == "[DONE]" {
			return text.String(), finish
		}
		var ev completion
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("event %q: %v", line, err)
		}
		if ev.Error != nil {
			t.Fatalf("error event after %q: %s", text.String(), ev.Error.Message)
		}
		if len(ev.Choices) > 0 {
			text.WriteString(ev.Choices[0].Text)
			if ev.Choices[0].FinishReason != "" {
				finish = ev.Choices[0].FinishReason
			}
			n++
			onChunk(n)
		}
	}
	t.Fatalf("stream ended without [DONE] after %q: %v", text.String(), sc.Err())
	return "", ""
}

// testKill: the node streaming an answer dies without a word; the client
// still gets one complete answer, equal to a direct greedy run.
func (c *cluster) testKill(t *testing.T) {
	const maxTokens = 48
	prompt := "In a quiet village by the sea"
	want := c.direct(prompt, maxTokens)
	c.delay.Store(int64(15 * time.Millisecond))
	defer c.delay.Store(0)
	var victim *testNode
	t0 := time.Now()
	got, finish := c.sseText(t, prompt, maxTokens, func(n int) {
		if n != 8 || victim != nil {
			return
		}
		for _, nd := range c.nodes {
			if nd.agent.Active() > 0 {
				victim = nd
			}
		}
		if victim == nil {
			t.Fatal("no node is running the job")
		}
		victim.agent.Kill()
		victim.killed = true
	})
	if victim == nil {
		t.Fatal("the stream ended before the kill")
	}
	t.Logf("killed %s after 8 chunks; answer complete in %s", victim.name, time.Since(t0).Round(time.Millisecond))
	if got != want || finish != engine.FinishLength {
		t.Fatalf("answer after the kill (finish %q):\n got %q\nwant %q", finish, got, want)
	}
	jobs, _ := c.ledger.JobRecords()
	last := jobs[len(jobs)-2:]
	if last[0].Node != victim.id.Pub || last[0].Outcome != "lost" || last[1].Attempt != 1 || last[1].Outcome != "done" ||
		last[0].Tokens+last[1].Tokens != maxTokens {
		t.Fatalf("job records of the resumed answer: %+v", last)
	}
	waitFor(t, "the dead node out of the registry", 2*time.Second, func() bool { return !c.connected(victim.id.Pub) })
}

// testRestart: the coordinator stops and starts again on the same data:
// the ledger is intact, live nodes rejoin, the quarantined one stays out.
func (c *cluster) testRestart(t *testing.T, cheat *testNode) {
	waitFor(t, "spot checks", 10*time.Second, func() bool { return c.co.PendingChecks() == 0 })
	before, err := c.ledger.NodeRecords()
	if err != nil {
		t.Fatal(err)
	}
	jobs, _ := c.ledger.JobRecords()
	checks, _ := c.ledger.CheckRecords()
	addr := c.addr
	c.stopCoordinator()
	c.startCoordinator(addr)
	after, err := c.ledger.NodeRecords()
	if err != nil {
		t.Fatal(err)
	}
	jobs2, _ := c.ledger.JobRecords()
	checks2, _ := c.ledger.CheckRecords()
	if len(jobs2) != len(jobs) || len(checks2) != len(checks) || len(after) != len(before) {
		t.Fatalf("ledger after restart: %d jobs (was %d), %d checks (was %d), %d nodes (was %d)",
			len(jobs2), len(jobs), len(checks2), len(checks), len(after), len(before))
	}
	for i := range before {
		a, b := before[i], after[i]
		if a.Key != b.Key || a.Stake != b.Stake || a.Balance != b.Balance || a.Checks != b.Checks || a.Quarantined != b.Quarantined {
			t.Fatalf("node record changed across the restart:\n%+v\n%+v", a, b)
		}
	}
	var live *testNode
	for _, n := range c.nodes {
		if n != cheat && !n.killed {
			live = n
		}
	}
	waitFor(t, "a node to rejoin", 10*time.Second, func() bool { return c.connected(live.id.Pub) })
	if _, _, err := c.complete("After the restart", 8); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * heartbeat)
	if c.connected(cheat.id.Pub) {
		t.Fatal("the quarantined node rejoined after the restart")
	}
}

// TestNodeVerifiersAndDrain: with no engine of its own the coordinator
// has nodes check each other (a rejection confirmed by a second node
// before anyone is slashed), and a node told to stop finishes its job
// before it leaves.
func TestNodeVerifiersAndDrain(t *testing.T) {
	pol := coord.Policy{P: 1, Reward: 1, Penalty: 5, FalseReject: 0.01, Alpha: 1e-4}
	c := newClusterWith(t, pol, coord.VerifyNodes, 20)
	poor := c.addNode("unstaked", c.model, 10)
	a := c.addNode("honest-a", c.model, 50)
	b := c.addNode("honest-b", c.model, 50)
	cheat := c.addNode("cheater", synthModel(t, 2), 50)
	for _, n := range c.nodes[1:] {
		waitFor(t, n.name+" to join", 5*time.Second, func() bool { return c.connected(n.id.Pub) })
	}
	if c.connected(poor.id.Pub) || poor.agent.Joins() != 0 {
		t.Fatal("a node staking less than the minimum joined")
	}
	for i := 0; !c.record(cheat.id.Pub).Quarantined; i++ {
		if i == 300 || c.jobsOf(cheat.id.Pub) > 30 {
			t.Fatalf("the cheater was not quarantined by node verifiers after %d of its jobs", c.jobsOf(cheat.id.Pub))
		}
		if _, _, err := c.complete(fmt.Sprintf("Node-checked request %d", i), 8); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "spot checks", 10*time.Second, func() bool { return c.co.PendingChecks() == 0 })
	}
	checks, _ := c.ledger.CheckRecords()
	for _, ch := range checks {
		if ch.Verifier == "coordinator" {
			t.Fatalf("a check ran on the coordinator: %+v", ch)
		}
		if ch.Node == cheat.id.Pub && !ch.OK && !strings.Contains(ch.Verifier, "+") {
			t.Fatalf("the cheater was slashed on one node's word: %+v", ch)
		}
	}
	// the cheater (stake 50, penalty 5 per failure) is below the minimum
	// of 20 only after 7 failures: quarantine came first
	for _, n := range []*testNode{a, b} {
		if r := c.record(n.id.Pub); r.Failed != 0 || r.Quarantined {
			t.Fatalf("%s: %+v", n.name, r)
		}
	}
	t.Logf("cheater quarantined by node verifiers after %d of its jobs; %d checks", c.jobsOf(cheat.id.Pub), len(checks))

	// drain a node in the middle of a streamed answer
	c.delay.Store(int64(10 * time.Millisecond))
	defer c.delay.Store(0)
	var drained *testNode
	got, _ := c.sseText(t, "A long story about the sea", 40, func(n int) {
		if n != 5 || drained != nil {
			return
		}
		for _, nd := range []*testNode{a, b} {
			if nd.agent.Active() > 0 {
				drained = nd
			}
		}
		drained.cancel() // SIGTERM
		// while it drains it takes no new job
		waitFor(t, "the drain to show", 2*time.Second, func() bool {
			for _, s := range c.co.Nodes() {
				if s.Key == drained.id.Pub {
					return s.Draining
				}
			}
			return true
		})
	})
	if drained == nil {
		t.Fatal("no node ran the job")
	}
	if want := c.direct("A long story about the sea", 40); got != want {
		t.Fatalf("drained answer:\n got %q\nwant %q", got, want)
	}
	select {
	case <-drained.done:
	case <-time.After(5 * time.Second):
		t.Fatal("the drained node did not leave")
	}
	jobs, _ := c.ledger.JobRecords()
	last := jobs[len(jobs)-1]
	if last.Node != drained.id.Pub || last.Attempt != 0 || last.Outcome != "done" || last.Tokens != 40 {
		t.Fatalf("the drained node's job was not finished by it: %+v", last)
	}
	waitFor(t, "the drained node to leave", 2*time.Second, func() bool { return !c.connected(drained.id.Pub) })
	if _, _, err := c.complete("After the drain", 8); err != nil {
		t.Fatal(err)
	}
}
