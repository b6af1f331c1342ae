package bench

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Budget is one VRAM point of a sweep: the label the user wrote and the
// device bytes it resolves to.
type Budget struct {
	Label string `json:"label"` // "25%", "1.5GiB", "0"
	Bytes int64  `json:"bytes"`
}

// maxBudget bounds a parsed budget (1 EiB, offload's MaxModelBytes).
const maxBudget = 1 << 60

// ParseBudgets reads a comma-separated list of VRAM points: plain bytes
// ("1000000"), binary or decimal units ("512MiB", "1.5GiB", "2GB", "64K"),
// or a share of the model ("25%", of modelBytes). Points are kept in the
// order given; duplicates (same bytes) are dropped.
func ParseBudgets(list string, modelBytes int64) ([]Budget, error) {
	var out []Budget
	seen := map[int64]bool{}
	for f := range strings.SplitSeq(list, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		n, err := ParseBytes(f, modelBytes)
		if err != nil {
			return nil, err
		}
		if seen[n] {
			continue
		}
		seen[n] = true
		out = append(out, Budget{Label: f, Bytes: n})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("bench: no VRAM points in %q", list)
	}
	return out, nil
}

// ParseBytes reads one byte count as ParseBudgets does; "%" is a share
// of modelBytes.
func ParseBytes(s string, modelBytes int64) (int64, error) {
	u := strings.ToUpper(strings.TrimSpace(s))
	mult := 1.0
	if p, ok := strings.CutSuffix(u, "%"); ok {
		if modelBytes <= 0 {
			return 0, fmt.Errorf("bench: %q: a share needs the model size", s)
		}
		u, mult = p, float64(modelBytes)/100
	} else {
		for _, unit := range []struct {
			suffix string
			mult   float64
		}{
			{"KIB", 1 << 10}, {"MIB", 1 << 20}, {"GIB", 1 << 30}, {"TIB", 1 << 40},
			{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12},
			{"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"T", 1 << 40}, {"B", 1},
		} {
			if p, ok := strings.CutSuffix(u, unit.suffix); ok {
				u, mult = strings.TrimSpace(p), unit.mult
				break
			}
		}
	}
	v, err := strconv.ParseFloat(u, 64)
	if err != nil || !(v >= 0) || math.IsInf(v, 0) || v*mult > maxBudget {
		return 0, fmt.Errorf("bench: VRAM point %q: want bytes, a size like 512MiB or 1.5GiB, or a share like 25%%", s)
	}
	return int64(math.Round(v * mult)), nil
}
