//go:build linux

package gguf

import "testing"

func TestMemAvailable(t *testing.T) {
	good := "MemTotal:       24591836 kB\nMemFree:        22000000 kB\nMemAvailable:   23020456 kB\nBuffers: 1 kB\n"
	if n, err := memAvailable(good); err != nil || n != 23020456<<10 {
		t.Errorf("memAvailable = %d, %v; want %d", n, err, int64(23020456)<<10)
	}
	for _, bad := range []string{
		"",
		"MemTotal: 1 kB\n",
		"MemAvailable: x kB\n",
		"MemAvailable: -5 kB\n",
		"MemAvailable: 99999999999999999999 kB\n",
		"MemAvailable: 9223372036854775807 kB\n", // overflows in bytes
	} {
		if n, err := memAvailable(bad); err == nil {
			t.Errorf("memAvailable(%q) = %d, want an error", bad, n)
		}
	}
	if n, err := AvailableMemory(); err != nil || n <= 0 {
		t.Errorf("AvailableMemory() = %d, %v", n, err)
	}
}

func TestTHPOn(t *testing.T) {
	for s, want := range map[string]bool{
		"[always] madvise never\n": true,
		"always [madvise] never\n": true,
		"always madvise [never]\n": false,
		"":                         false,
	} {
		if got := thpOn(s); got != want {
			t.Errorf("thpOn(%q) = %v, want %v", s, got, want)
		}
	}
}
