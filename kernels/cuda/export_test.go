package cuda

// Hooks for the external tests (package cuda_test).

// KernelNames lists the launch table's entry points and parameter letters.
func KernelNames() map[string]string {
	m := map[string]string{}
	for _, s := range kernelSpecs {
		m[s.name] = s.params
	}
	return m
}

// PTX returns the embedded PTX of target "compute_52" or "compute_80".
func PTX(target string) string {
	for _, p := range ptxImages {
		if p.target == target {
			return p.text
		}
	}
	return ""
}

// ChoosePTX exposes the PTX choice: the target, or the refusal.
func ChoosePTX(cc [2]int, driver int) (string, error) {
	p, err := choosePTX(cc, driver, "test GPU")
	if err != nil {
		return "", err
	}
	return p.target, nil
}

// AxpySplits and AttnSplits expose the split heuristics.
var (
	AxpySplits = axpySplits
	AttnSplits = attnSplits
)
