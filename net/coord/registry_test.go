package coord

import (
	"math"
	"testing"

	"github.com/stokehq/stoke/net/identity"
	"github.com/stokehq/stoke/net/wire"
)

func testPeer(k byte, tps float32, slots uint32, ctx uint32, model [32]byte) *peer {
	return &peer{key: identity.PublicKey{k}, hello: wire.Hello{Slots: slots, TokensPerSec: tps,
		Models: []wire.ModelInfo{{SHA256: model, Context: ctx}}}}
}

// TestPick: jobs spread in proportion to speed ÷ load; nodes that cannot
// take the job are never chosen.
func TestPick(t *testing.T) {
	m := [32]byte{1}
	r := newRegistry(1)
	slow, fast := testPeer(1, 100, 4, 512, m), testPeer(2, 300, 4, 512, m)
	for _, p := range []*peer{slow, fast, testPeer(3, 1000, 4, 512, [32]byte{2}), testPeer(4, 1000, 4, 16, m)} {
		r.add(p)
	}
	drain := testPeer(5, 1000, 4, 512, m)
	r.add(drain)
	r.heartbeat(drain, &wire.Heartbeat{Draining: true, TokensPerSec: 1000})
	out := testPeer(6, 1000, 4, 512, m)
	r.add(out)
	r.setOut(out)

	n := map[*peer]int{}
	const trials = 20000
	for range trials {
		p := r.pick(m, 100, nil)
		n[p]++
		r.done(p)
	}
	if len(n) != 2 {
		t.Fatalf("picked %d distinct nodes, want the 2 usable ones", len(n))
	}
	if f := float64(n[fast]) / trials; math.Abs(f-0.75) > 0.02 {
		t.Fatalf("the 3× faster node got %.3f of the jobs, want 0.75", f)
	}
	// load shifts the choice: the fast node with 8 jobs on 4 slots costs
	// (1 + 2 + 5)/300 against the slow idle one's 1/100
	for range 8 {
		fast.inflight++
	}
	n = map[*peer]int{}
	for range trials {
		p := r.pick(m, 100, nil)
		n[p]++
		r.done(p)
	}
	if f := float64(n[slow]) / trials; math.Abs(f-(1/0.01)/(1/0.01+300.0/8)) > 0.02 {
		t.Fatalf("slow idle node got %.3f", f)
	}
	if p := r.pick(m, 100, map[*peer]bool{slow: true, fast: true}); p != nil {
		t.Fatalf("picked excluded %v", p.key.Short())
	}
	if p := r.pick(m, 600, nil); p != nil {
		t.Fatal("picked a node whose context is too short")
	}
	if p := r.pickVerifier(m, 10, slow.key); p != nil {
		t.Fatal("picked a node that does not verify")
	}
	fast.hello.Verifier = true
	if p := r.pickVerifier(m, 10, slow.key); p != fast {
		t.Fatal("did not pick the verifier")
	}
	if p := r.pickVerifier(m, 10, fast.key); p != nil {
		t.Fatal("picked the job's own node as its verifier")
	}
}
