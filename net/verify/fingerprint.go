package verify

import (
	"errors"
	"fmt"

	"github.com/stokehq/stoke/engine"
	"github.com/stokehq/stoke/engine/fingerprint"
)

// fingerprintCheck verifies c's proof with the engine's fingerprint
// checker; ok is true when it reached a verdict. A proof that does not
// decode is a failed check: the node sent garbage.
func fingerprintCheck(s *engine.Session, c Check) (v Verdict, ok bool, err error) {
	rep, err := s.VerifyFingerprint(c.Prompt, c.Output, c.Proof)
	switch {
	case errors.Is(err, fingerprint.ErrMalformed):
		return Verdict{Reason: err.Error()}, true, nil
	case err != nil:
		return Verdict{}, false, err
	case !rep.OK:
		return Verdict{Reason: "fingerprint: " + rep.Reason}, true, nil
	}
	return Verdict{OK: true, Reason: fmt.Sprintf("fingerprint of %d groups matches (worst miss %.2f, worst median %.1f)", rep.Groups, rep.WorstMiss, rep.WorstMedian)}, true, nil
}
