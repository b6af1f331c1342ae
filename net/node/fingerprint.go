package node

import "github.com/stokehq/stoke/engine"

// requestFingerprint asks the engine to fingerprint a generation.
func requestFingerprint(p *engine.GenerateParams) { p.Fingerprint = true }

// proofOf is the fingerprint of a finished generation.
func proofOf(res *engine.Result) []byte { return res.Fingerprint }
