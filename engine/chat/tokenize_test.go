package chat_test

import (
	"path/filepath"
	"slices"
	"testing"

	"github.com/stokehq/stoke/models/gguf"
	"github.com/stokehq/stoke/models/tokenizer"
)

// TestQwen3ReferenceIDs tokenizes our renders as the server does (special
// tokens parsed, nothing added) and compares with the reference ids.
func TestQwen3ReferenceIDs(t *testing.T) {
	tmpl, dir := qwen3(t)
	f, err := gguf.Open(filepath.Join(dir, "models", "qwen3-tiny-random.gguf"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tok, err := tokenizer.FromGGUF(f)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"qwen3-tiny-random.chat.c1.gen0.json", "qwen3-tiny-random.chat.c1.gen1.json"} {
		r := loadRef(t, dir, name)
		s, err := tmpl.Render(r.msgs(), r.AddGenerationPrompt)
		if err != nil {
			t.Fatal(err)
		}
		if ids := tok.Encode(s, false, true); !slices.Equal(ids, r.IDs) {
			t.Errorf("%s: ids %v, want %v", name, ids, r.IDs)
		}
	}
}
