package main

import (
	"encoding/json"
	"testing"
)

// TestFingerprintEval runs a small campaign on synthetic models: honest
// runs pass, every attack is caught. (The README's figures come from the
// same command with -runs 1000.)
func TestFingerprintEval(t *testing.T) {
	if testing.Short() {
		t.Skip("campaign")
	}
	out, e, code := stoke(t, "fingerprint-eval", "-synth", "-synth-params", "1.2e6", "-runs", "16", "-attacks", "3",
		"-max-tokens", "40", "-timing-reps", "1", "-json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, e)
	}
	var res fpOutcome
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if res.Honest.Runs < 16 || res.Honest.Rejected != 0 {
		t.Errorf("honest: %+v", res.Honest)
	}
	if res.ProofBytes256 == 0 || res.VerifyOverGen <= 0 {
		t.Errorf("timing: %d bytes, ratio %.3f", res.ProofBytes256, res.VerifyOverGen)
	}
	for _, name := range []string{"wrong quantization", "wrong model", "altered prompt token", "altered output token: first", "altered output token: random", "altered output token: last"} {
		s := res.Attacks[name]
		if s == nil || s.Runs == 0 || s.Accepted != 0 {
			t.Errorf("%s: %+v", name, s)
		}
	}
}
