package modelid_test

import (
	"crypto/sha256"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stokehq/stoke/engine"
	"github.com/stokehq/stoke/models/dtype"
	"github.com/stokehq/stoke/models/synth"
	"github.com/stokehq/stoke/net/modelid"
)

func TestOf(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "m.gguf")
	if err := synth.Write(p, synth.Config{Arch: "llama", Params: 1e6, Type: dtype.Q4_0, Seed: 1}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	want := sha256.Sum256(b)
	m, err := engine.Load(p)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	cache := filepath.Join(dir, "cache")
	os.Mkdir(cache, 0o700)
	info, err := modelid.Of(m, "m", 256, cache)
	if err != nil {
		t.Fatal(err)
	}
	if info.SHA256 != want || info.Arch != "llama" || info.Quant != "Q4_0" || info.Context != 256 || info.Params == 0 {
		t.Fatalf("%+v", info)
	}
	// the cache answers without reading the file; a changed file is
	// hashed again
	if _, err := os.Stat(filepath.Join(cache, "model-digests.json")); err != nil {
		t.Fatal(err)
	}
	if got, err := modelid.FileSHA256(p, cache); err != nil || got != want {
		t.Fatalf("cached: %x %v", got, err)
	}
	b[len(b)-1] ^= 1
	os.WriteFile(p, b, 0o644)
	os.Chtimes(p, time.Now().Add(time.Hour), time.Now().Add(time.Hour))
	if got, err := modelid.FileSHA256(p, cache); err != nil || got == want || got != sha256.Sum256(b) {
		t.Fatalf("after a change: %x %v", got, err)
	}
}
