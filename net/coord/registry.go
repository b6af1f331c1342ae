package coord

import (
	"math/rand/v2"
	"sort"
	"sync"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/stokehq/stoke/net/identity"
	"github.com/stokehq/stoke/net/wire"
)

// peer is a connected node.
type peer struct {
	key    identity.PublicKey
	conn   *quic.Conn
	hello  wire.Hello
	joined time.Time

	// guarded by registry.mu
	lastSeen time.Time
	hb       wire.Heartbeat
	inflight int     // jobs and checks this coordinator has open on it
	out      bool    // out of rotation (quarantined, timed out, closing)
	measured float64 // decode tokens/s the gateway observed (EWMA), 0 before a job
}

func (p *peer) serves(model [32]byte) (wire.ModelInfo, bool) {
	for _, m := range p.hello.Models {
		if m.SHA256 == model {
			return m, true
		}
	}
	return wire.ModelInfo{}, false
}

// speed is the node's decode speed in tokens/s: as the gateway measured
// it (a node cannot inflate that to attract jobs), else its latest
// report, else its hello, else 1.
func (p *peer) speed() float64 {
	switch {
	case p.measured > 0:
		return p.measured
	case p.hb.TokensPerSec > 0:
		return float64(p.hb.TokensPerSec)
	case p.hello.TokensPerSec > 0:
		return float64(p.hello.TokensPerSec)
	}
	return 1
}

// cost is the routing score, lower is better: the expected time per
// token of one more job. A node decodes up to Slots jobs together at
// about its measured speed each (continuous batching) and queues the
// rest, so
//
//	cost = (1 + inflight/slots + queued_ahead) / tokens_per_second
//
// where queued_ahead = max(0, inflight + 1 − slots) jobs wait for a slot.
func (p *peer) cost() float64 {
	slots := max(1, int(p.hello.Slots))
	ahead := max(0, p.inflight+1-slots)
	return (1 + float64(p.inflight)/float64(slots) + float64(ahead)) / p.speed()
}

// registry holds the connected nodes.
type registry struct {
	mu    sync.Mutex
	peers map[identity.PublicKey]*peer
	rng   *rand.Rand
}

func newRegistry(seed uint64) *registry {
	return &registry{peers: map[identity.PublicKey]*peer{}, rng: rand.New(rand.NewPCG(seed, seed^0x5eed))}
}

// add registers p, returning a peer it replaces (the same key
// connected again).
func (r *registry) add(p *peer) *peer {
	r.mu.Lock()
	defer r.mu.Unlock()
	old := r.peers[p.key]
	p.lastSeen = time.Now()
	r.peers[p.key] = p
	return old
}

// remove unregisters p if it is still the registered peer of its key.
func (r *registry) remove(p *peer) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.peers[p.key] == p {
		delete(r.peers, p.key)
		return true
	}
	return false
}

func (r *registry) get(k identity.PublicKey) *peer {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.peers[k]
}

func (r *registry) heartbeat(p *peer, hb *wire.Heartbeat) {
	r.mu.Lock()
	defer r.mu.Unlock()
	p.lastSeen = time.Now()
	p.hb = *hb
}

// setOut takes a peer out of rotation.
func (r *registry) setOut(p *peer) {
	r.mu.Lock()
	p.out = true
	r.mu.Unlock()
}

// usable reports whether p may take new work for model with a prompt of
// n tokens.
func usable(p *peer, model [32]byte, n int) bool {
	if p.out || p.hb.Draining {
		return false
	}
	m, ok := p.serves(model)
	return ok && (m.Context == 0 || int(m.Context) > n)
}

// pick chooses the node for a job of n prompt tokens among the usable
// ones, at random with probability proportional to 1/cost: load spreads
// over the nodes in proportion to their speed, an idle fast node is
// preferred, and no node can corner (or dodge) the work. exclude lists
// nodes already tried. The chosen node's inflight count is taken
// (release it with done).
func (r *registry) pick(model [32]byte, n int, exclude map[*peer]bool) *peer {
	r.mu.Lock()
	defer r.mu.Unlock()
	var cand []*peer
	var w []float64
	total := 0.0
	for _, p := range r.sorted() {
		if exclude[p] || !usable(p, model, n) {
			continue
		}
		cand = append(cand, p)
		w = append(w, 1/p.cost())
		total += w[len(w)-1]
	}
	if len(cand) == 0 {
		return nil
	}
	x := r.rng.Float64() * total
	p := cand[len(cand)-1]
	for i, wi := range w {
		if x < wi {
			p = cand[i]
			break
		}
		x -= wi
	}
	p.inflight++
	return p
}

// sorted lists the peers in key order (map order is not the RNG's to
// give). Called with mu held.
func (r *registry) sorted() []*peer {
	out := make([]*peer, 0, len(r.peers))
	for _, p := range r.peers {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return string(out[i].key[:]) < string(out[j].key[:]) })
	return out
}

// observe folds a job's decode speed, as the gateway saw it, into the
// node's measured speed.
func (r *registry) observe(p *peer, tokensPerSec float64) {
	if !(tokensPerSec > 0) {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if p.measured == 0 {
		p.measured = tokensPerSec
	} else {
		p.measured = 0.8*p.measured + 0.2*tokensPerSec
	}
}

// pickVerifier chooses a random usable verifier node for model that is
// none of exclude.
func (r *registry) pickVerifier(model [32]byte, n int, exclude ...identity.PublicKey) *peer {
	r.mu.Lock()
	defer r.mu.Unlock()
	var c []*peer
next:
	for _, p := range r.sorted() {
		for _, k := range exclude {
			if p.key == k {
				continue next
			}
		}
		if p.hello.Verifier && usable(p, model, n) {
			c = append(c, p)
		}
	}
	if len(c) == 0 {
		return nil
	}
	p := c[r.rng.IntN(len(c))]
	p.inflight++
	return p
}

func (r *registry) done(p *peer) {
	r.mu.Lock()
	p.inflight--
	r.mu.Unlock()
}

// stale returns the peers not heard from since before t.
func (r *registry) stale(t time.Time) []*peer {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*peer
	for _, p := range r.peers {
		if p.lastSeen.Before(t) {
			out = append(out, p)
		}
	}
	return out
}

func (r *registry) all() []*peer {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]*peer, 0, len(r.peers))
	for _, p := range r.peers {
		out = append(out, p)
	}
	return out
}

// NodeStatus is a connected node as the coordinator sees it.
type NodeStatus struct {
	Key          identity.PublicKey `json:"key"`
	Name         string             `json:"name"`
	Addr         string             `json:"addr"`
	Hardware     wire.Hardware      `json:"hardware"`
	Models       []string           `json:"models"` // sha256 prefixes
	Slots        int                `json:"slots"`
	TokensPerSec float64            `json:"tokens_per_s"`
	InFlight     int                `json:"in_flight"`
	Active       int                `json:"active"`
	Queued       int                `json:"queued"`
	Draining     bool               `json:"draining"`
	InRotation   bool               `json:"in_rotation"`
	LastSeen     time.Time          `json:"last_seen"`
	Joined       time.Time          `json:"joined"`
}

func (r *registry) status() []NodeStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]NodeStatus, 0, len(r.peers))
	for _, p := range r.peers {
		s := NodeStatus{Key: p.key, Name: p.hello.Name, Addr: p.conn.RemoteAddr().String(), Hardware: p.hello.Hardware,
			Slots: int(p.hello.Slots), TokensPerSec: p.speed(), InFlight: p.inflight, Active: int(p.hb.Active),
			Queued: int(p.hb.Queued), Draining: p.hb.Draining, InRotation: !p.out && !p.hb.Draining,
			LastSeen: p.lastSeen, Joined: p.joined}
		for _, m := range p.hello.Models {
			s.Models = append(s.Models, shaShort(m.SHA256))
		}
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name+out[i].Key.String() < out[j].Name+out[j].Key.String() })
	return out
}
