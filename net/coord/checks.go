package coord

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/stokehq/stoke/net/identity"
	"github.com/stokehq/stoke/net/verify"
	"github.com/stokehq/stoke/net/wire"
)

// verifierCoordinator names the coordinator's own engine in check records.
const verifierCoordinator = "coordinator"

type checkJob struct {
	job   JobRecord
	check verify.Check
}

// checker samples finished jobs with probability Policy.P and verifies
// them in the background, one at a time (a check is a prefill of the
// whole job: cheap next to generation, but not free).
type checker struct {
	c    *Coordinator
	mu   sync.Mutex
	rng  *rand.Rand
	q    chan checkJob
	busy atomic.Int64 // queued + running
}

func newChecker(c *Coordinator) *checker {
	s := c.cfg.Seed
	return &checker{c: c, rng: rand.New(rand.NewPCG(s^0xc4ec, s+0x5107)), q: make(chan checkJob, c.cfg.CheckQueue)}
}

func (k *checker) pending() int { return int(k.busy.Load()) }

// maybe queues a check of a finished job with probability P. The node
// learns nothing of the draw: every job carries a fingerprint.
func (k *checker) maybe(rec JobRecord, chk verify.Check) {
	if len(chk.Output) == 0 {
		return
	}
	k.mu.Lock()
	hit := k.rng.Float64() < k.c.cfg.Policy.P
	k.mu.Unlock()
	if !hit {
		return
	}
	k.busy.Add(1)
	select {
	case k.q <- checkJob{job: rec, check: chk}:
	default:
		k.busy.Add(-1)
		k.c.log.Warn("spot-check queue full: check dropped", "job", rec.ID, "node", rec.Node.Short())
	}
}

func (k *checker) run() {
	defer k.c.wg.Done()
	for {
		select {
		case <-k.c.ctx.Done():
			return
		case j := <-k.q:
			k.do(j)
			k.busy.Add(-1)
		}
	}
}

func (k *checker) do(j checkJob) {
	c := k.c
	t0 := time.Now()
	v, by, err := k.verify(j)
	if err != nil {
		if c.ctx.Err() == nil {
			c.log.Warn("spot check could not run", "job", j.job.ID, "node", j.job.Node.Short(), "err", err)
		}
		return
	}
	c.log.Info("spot check", "job", j.job.ID, "node", j.job.Node.Short(), "ok", v.OK, "verifier", by, "reason", v.Reason,
		"tokens", len(j.check.Output), "took", time.Since(t0).Round(time.Millisecond))
	if err := k.record(j.job.ID, j.job.Node, by, v); err != nil {
		c.log.Error("ledger: check not recorded", "err", err)
	}
}

// verify runs a check: on the coordinator's engine, or on a random node
// other than the job's. A node's rejection is confirmed (by the
// coordinator's engine, else by a second node) before anyone is slashed;
// a rejection the coordinator overrules counts as a failed check of the
// verifier.
func (k *checker) verify(j checkJob) (verify.Verdict, string, error) {
	c := k.c
	ctx := c.ctx
	local := c.cfg.Verifier
	if c.cfg.VerifyBy == VerifyLocal || (c.cfg.VerifyBy == VerifyAuto && local != nil) {
		v, err := local.Verify(ctx, j.check)
		return v, verifierCoordinator, err
	}
	n := len(j.check.Prompt) + len(j.check.Output)
	vp := c.reg.pickVerifier(c.cfg.Model.SHA256, n, j.job.Node)
	if vp == nil {
		if local != nil {
			v, err := local.Verify(ctx, j.check)
			return v, verifierCoordinator, err
		}
		return verify.Verdict{}, "", errors.New("no verifier node available")
	}
	v, err := k.remote(ctx, vp, j)
	c.reg.done(vp)
	if err != nil {
		if local != nil {
			v, err := local.Verify(ctx, j.check)
			return v, verifierCoordinator, err
		}
		return verify.Verdict{}, "", fmt.Errorf("verifier %s: %w", vp.key.Short(), err)
	}
	if v.OK {
		return v, vp.key.String(), nil
	}
	// confirm the rejection
	if local != nil {
		v2, err := local.Verify(ctx, j.check)
		if err != nil {
			return verify.Verdict{}, "", err
		}
		if v2.OK {
			c.log.Warn("a verifier rejected a job the coordinator accepts: counting it against the verifier", "verifier", vp.key.Short(), "job", j.job.ID)
			if err := k.record(j.job.ID, vp.key, verifierCoordinator, verify.Verdict{Reason: "false rejection of job " + fmt.Sprint(j.job.ID) + ": " + v.Reason}); err != nil {
				c.log.Error("ledger", "err", err)
			}
		}
		return v2, verifierCoordinator, nil
	}
	vp2 := c.reg.pickVerifier(c.cfg.Model.SHA256, n, j.job.Node, vp.key)
	if vp2 == nil {
		return verify.Verdict{}, "", fmt.Errorf("verifier %s rejected the job and no second verifier can confirm: %s", vp.key.Short(), v.Reason)
	}
	v2, err := k.remote(ctx, vp2, j)
	c.reg.done(vp2)
	switch {
	case err != nil:
		return verify.Verdict{}, "", fmt.Errorf("confirming verifier %s: %w", vp2.key.Short(), err)
	case v2.OK:
		return verify.Verdict{}, "", fmt.Errorf("verifiers disagree (%s rejects: %s; %s accepts): no verdict", vp.key.Short(), v.Reason, vp2.key.Short())
	}
	return v, vp.key.String() + "+" + vp2.key.Short(), nil
}

// remote asks node p to verify.
func (k *checker) remote(ctx context.Context, p *peer, j checkJob) (verify.Verdict, error) {
	c := k.c
	s, err := p.conn.OpenStreamSync(ctx)
	if err != nil {
		return verify.Verdict{}, err
	}
	defer s.CancelRead(quic.StreamErrorCode(wire.CodeCancelled))
	req := &wire.VerifyRequest{ID: j.job.ID, Model: c.cfg.Model.SHA256, Prompt: j.check.Prompt, Output: j.check.Output,
		Params: wire.FromEngine(j.check.Params), Proof: j.check.Proof}
	s.SetWriteDeadline(time.Now().Add(c.cfg.TokenTimeout))
	if err := wire.Write(s, req); err != nil {
		return verify.Verdict{}, err
	}
	s.Close()
	s.SetReadDeadline(time.Now().Add(c.cfg.FirstTokenTimeout))
	m, err := wire.Read(s)
	if err != nil {
		return verify.Verdict{}, err
	}
	switch m := m.(type) {
	case *wire.VerifyResult:
		if m.ID != j.job.ID {
			return verify.Verdict{}, fmt.Errorf("answered for job %d, asked %d", m.ID, j.job.ID)
		}
		return verify.Verdict{OK: m.OK, Reason: m.Reason}, nil
	case *wire.Error:
		return verify.Verdict{}, m
	}
	return verify.Verdict{}, fmt.Errorf("unexpected %s", m.Type())
}

// record commits a check's outcome in one transaction: the check, the
// node's window and counters and, on a failure, the slashed stake, the
// forfeited reward and the quarantine decision.
func (k *checker) record(jobID uint64, key identity.PublicKey, by string, v verify.Verdict) error {
	c := k.c
	pol := c.cfg.Policy
	var cr CheckRecord
	var quarantined, underStaked bool
	var why string
	err := c.ledger.Update(func(t *Tx) error {
		r, ok, err := t.Node(key)
		if err != nil {
			return err
		}
		if !ok {
			r = NodeRecord{Key: key, FirstSeen: time.Now()}
		}
		now := time.Now()
		r.addCheck(v.OK)
		cr = CheckRecord{Job: jobID, Node: key, Verifier: by, OK: v.OK, Reason: v.Reason, Tail: 1, Time: now}
		if !v.OK {
			slash := min(pol.Penalty, max(r.Stake, 0))
			r.Stake -= slash
			r.Slashed += slash
			cr.Slashed = slash
			if job, ok, err := t.Job(jobID); err == nil && ok && job.Node == key && job.Reward > 0 {
				r.Balance -= job.Reward
				job.Reward = 0
				job.Outcome = "done, failed its check"
				if err := t.PutJob(job); err != nil {
					return err
				}
			}
			cr.Tail = BinomialTail(r.WindowLen, r.WindowFailures(), pol.FalseReject)
			if cr.Tail <= pol.Alpha && !r.Quarantined {
				why = fmt.Sprintf("%d of its last %d checks failed: P = %.2g under an honest false-rejection rate of %g, below %g (last: %s)",
					r.WindowFailures(), r.WindowLen, cr.Tail, pol.FalseReject, pol.Alpha, v.Reason)
				r.Quarantined, r.QuarantinedAt, r.Why = true, now, why
				cr.Quarantined, quarantined = true, true
			}
		}
		underStaked = !v.OK && !c.cfg.Open && r.Stake < c.cfg.MinStake
		if err := t.AppendCheck(&cr); err != nil {
			return err
		}
		return t.PutNode(r)
	})
	if err != nil {
		return err
	}
	if !v.OK {
		c.log.Warn("failed spot check: stake slashed", "node", key.Short(), "job", jobID, "slashed", cr.Slashed, "tail_p", cr.Tail, "reason", v.Reason)
	}
	switch {
	case quarantined:
		c.log.Warn("node quarantined", "node", key.Short(), "why", why)
		c.quarantine(key, why)
	case underStaked:
		c.log.Warn("node slashed below the minimum stake: disconnected", "node", key.Short(), "min_stake", c.cfg.MinStake)
		if p := c.reg.get(key); p != nil {
			c.reg.setOut(p)
			c.reg.remove(p)
			refuse(p.conn, wire.CodeNotAdmitted, "stake below the minimum of %d", c.cfg.MinStake)
		}
	}
	return nil
}
