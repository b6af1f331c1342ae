package engine

import "testing"

func TestInMemoryFits(t *testing.T) {
	const gib = 1 << 30
	for _, c := range []struct {
		size, avail int64
		want        bool
	}{
		{1 * gib, 20 * gib, true},
		{12 * gib, 20 * gib, true},
		{12*gib + 1, 20 * gib, false},
		{4 * gib, 6 * gib, false},
		{1, 0, false},
	} {
		got, why := inMemoryFits(c.size, c.avail)
		if got != c.want || got != (why == "") {
			t.Errorf("inMemoryFits(%d, %d) = %v, %q; want %v", c.size, c.avail, got, why, c.want)
		}
	}
	if ok, why := InMemoryPays("/nonexistent/model.gguf"); ok || why == "" {
		t.Errorf("InMemoryPays of a missing file = %v, %q", ok, why)
	}
}
