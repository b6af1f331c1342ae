package coord

import (
	"errors"
	"fmt"
	"math"
)

// Spot-check economics (Proof of Sampling, Hyperbolic Labs, 2024).
//
// Every job is sent with a request for a fingerprint and is checked,
// after it ends, with probability p; the node cannot tell which jobs
// will be checked. Let
//
//	R  the reward of one job,
//	S  the stake slashed when a check fails,
//	C  what a node saves by cheating on one job (the cost of honest
//	   compute it did not spend: a smaller model, fabricated tokens),
//	r  the share of verifiers colluding with cheaters (a colluding
//	   verifier passes a cheat),
//	d  the detection rate of one honest check (≈ 1 for fingerprints
//	   against another model, fabricated or altered tokens).
//
// An honest node earns R − cost. A cheater is caught with probability
// q = p·(1−r)·d, and then loses the reward and the stake:
//
//	E[cheat] − E[honest] = (1−q)·R − q·S − (cost − C) − (R − cost)
//	                     = C − q·(R + S)
//
// so cheating has negative expected payoff exactly when
//
//	p > C / ((1 − r)·d·(R + S))      (MinCheckProbability)
//
// or, for a chosen p, when the slashed stake S > C / (p·(1−r)·d) − R
// (MinPenalty). Hyperbolic's example: with r = 10 % a p below 1 % makes
// cheating a losing bet once R + S is large against C. The operator sets
// p (--verify-p) and S (--penalty) from these; the coordinator warns at
// start when its p is below the minimum for the stated C.
//
// Honest nodes pay for false rejections: a check rejects an honest job
// with probability ε (the fingerprint's false-rejection rate), costing
// an honest node p·ε·(R + S) per job in expectation; keep ε·(R+S) small
// against R.

// MinCheckProbability is the smallest check probability at which
// cheating does not pay: C / ((1−r)·(R+S)) (detection rate 1). It may
// exceed 1: no p deters, raise the stake.
func MinCheckProbability(saving, reward, stake, collusion float64) float64 {
	if collusion >= 1 || reward+stake <= 0 {
		return math.Inf(1)
	}
	return saving / ((1 - collusion) * (reward + stake))
}

// MinPenalty is the smallest slashed stake at which cheating does not
// pay under check probability p: C / (p·(1−r)) − R (never negative).
func MinPenalty(saving, reward, p, collusion float64) float64 {
	if p <= 0 || collusion >= 1 {
		return math.Inf(1)
	}
	return max(0, saving/(p*(1-collusion))-reward)
}

// CheatGain is a cheater's expected gain per job over an honest node:
// C − p·(1−r)·(R+S). Negative means cheating loses.
func CheatGain(saving, reward, stake, p, collusion float64) float64 {
	return saving - p*(1-collusion)*(reward+stake)
}

// Quarantine by reputation.
//
// An honest node fails each check independently with probability at most
// ε (the calibrated false-rejection rate). After a failure, with f
// failures among its last n checks (n ≤ WindowSize), the coordinator
// computes the binomial tail
//
//	P_honest(X ≥ f) = Σ_{k=f..n} C(n,k) ε^k (1−ε)^(n−k),  X ~ Bin(n, ε)
//
// and quarantines when it is at most α. So an honest node is wrongly
// quarantined at a given failure with probability at most α, whatever
// its history; a cheater whose every checked job fails is quarantined
// after FailuresToQuarantine(ε, α) = ⌈log α / log ε⌉ failed checks, that
// is after about that many / (p·(1−r)) of its jobs.

// BinomialTail is P(X ≥ f) for X ~ Binomial(n, eps), computed in log
// space.
func BinomialTail(n, f int, eps float64) float64 {
	switch {
	case f <= 0:
		return 1
	case f > n:
		return 0
	case eps <= 0:
		return 0
	case eps >= 1:
		return 1
	}
	le, l1 := math.Log(eps), math.Log1p(-eps)
	lgN, _ := math.Lgamma(float64(n + 1))
	sum := 0.0
	for k := f; k <= n; k++ {
		lk, _ := math.Lgamma(float64(k + 1))
		lnk, _ := math.Lgamma(float64(n - k + 1))
		sum += math.Exp(lgN - lk - lnk + float64(k)*le + float64(n-k)*l1)
	}
	return min(1, sum)
}

// FailuresToQuarantine is the length of the shortest run of failed
// checks that quarantines a node with no other history: the least f
// with ε^f ≤ α.
func FailuresToQuarantine(eps, alpha float64) int {
	if eps <= 0 {
		return 1
	}
	if eps >= 1 || alpha <= 0 {
		return math.MaxInt
	}
	f := int(math.Ceil(math.Log(alpha)/math.Log(eps) - 1e-9))
	return max(1, f)
}

// ExpectedJobsToQuarantine is the expected number of a cheater's jobs
// until quarantine when each of its checks fails: f / (p·(1−r)).
func ExpectedJobsToQuarantine(p, collusion, eps, alpha float64) float64 {
	if p <= 0 || collusion >= 1 {
		return math.Inf(1)
	}
	return float64(FailuresToQuarantine(eps, alpha)) / (p * (1 - collusion))
}

// Policy is the operator's spot-check and penalty settings.
type Policy struct {
	P           float64 // probability a job is checked
	Reward      int64   // credits per finished job
	Penalty     int64   // stake slashed per failed check
	FalseReject float64 // ε: the honest false-rejection rate assumed
	Alpha       float64 // α: the quarantine test's bound
}

// DefaultPolicy: every job checked with probability 0.05; ε = 1 %
// (conservative against the fingerprint's measured rate) and α = 10⁻⁴
// quarantine after two failed checks in a row.
var DefaultPolicy = Policy{P: 0.05, Reward: 1, Penalty: 100, FalseReject: 0.01, Alpha: 1e-4}

// Validate reports a setting out of range.
func (p Policy) Validate() error {
	switch {
	case !(p.P >= 0 && p.P <= 1):
		return fmt.Errorf("check probability %g is not in [0, 1]", p.P)
	case p.Reward < 0 || p.Penalty < 0:
		return errors.New("reward and penalty must be ≥ 0")
	case !(p.FalseReject > 0 && p.FalseReject < 1):
		return fmt.Errorf("false-rejection rate %g is not in (0, 1)", p.FalseReject)
	case !(p.Alpha > 0 && p.Alpha < 1):
		return fmt.Errorf("quarantine bound %g is not in (0, 1)", p.Alpha)
	}
	return nil
}
