// Package modelid names a model by content: the sha256 of its GGUF file
// and its architecture, so that a node cannot claim a model by calling
// its file by the right name. Hashing a large file takes seconds, so a
// digest is cached beside the caller's data, keyed by path, size and
// modification time.
package modelid

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/stokehq/stoke/engine"
	"github.com/stokehq/stoke/models/dtype"
	"github.com/stokehq/stoke/net/wire"
)

// Of describes a loaded model; context is the tokens of one slot.
// cacheDir ("" for none) keeps digests between starts.
func Of(m *engine.Model, name string, context int, cacheDir string) (wire.ModelInfo, error) {
	sum, err := FileSHA256(m.Path, cacheDir)
	if err != nil {
		return wire.ModelInfo{}, err
	}
	return wire.ModelInfo{
		SHA256: sum, Arch: m.Config.Family.Name, Name: name, Quant: Quant(m),
		Params: uint64(m.ParamCount()), Context: uint32(context),
	}, nil
}

// Quant is the weight type holding most of the model's bytes.
func Quant(m *engine.Model) string {
	bytes := map[dtype.Type]uint64{}
	for _, t := range m.File.Tensors {
		if len(t.Shape) >= 2 {
			bytes[t.Type] += t.Size
		}
	}
	var best dtype.Type
	var most uint64
	for t, n := range bytes {
		if n > most || (n == most && t < best) {
			best, most = t, n
		}
	}
	if most == 0 {
		return ""
	}
	return best.String()
}

type cacheEntry struct {
	Path    string `json:"path"`
	Size    int64  `json:"size"`
	ModTime int64  `json:"mtime_ns"`
	SHA256  string `json:"sha256"`
}

const cacheFile = "model-digests.json"

// FileSHA256 hashes a file, using and updating the cache in cacheDir.
func FileSHA256(path, cacheDir string) ([32]byte, error) {
	var sum [32]byte
	abs, err := filepath.Abs(path)
	if err != nil {
		return sum, err
	}
	st, err := os.Stat(abs)
	if err != nil {
		return sum, err
	}
	var cache []cacheEntry
	cpath := filepath.Join(cacheDir, cacheFile)
	if cacheDir != "" {
		if b, err := os.ReadFile(cpath); err == nil {
			json.Unmarshal(b, &cache) // a broken cache is rebuilt
		}
		for _, e := range cache {
			if e.Path == abs && e.Size == st.Size() && e.ModTime == st.ModTime().UnixNano() {
				if b, err := hex.DecodeString(e.SHA256); err == nil && len(b) == len(sum) {
					copy(sum[:], b)
					return sum, nil
				}
			}
		}
	}
	f, err := os.Open(abs)
	if err != nil {
		return sum, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return sum, fmt.Errorf("hashing %s: %w", path, err)
	}
	h.Sum(sum[:0])
	if cacheDir == "" {
		return sum, nil
	}
	kept := cache[:0]
	for _, e := range cache {
		if e.Path != abs {
			kept = append(kept, e)
		}
	}
	kept = append(kept, cacheEntry{Path: abs, Size: st.Size(), ModTime: st.ModTime().UnixNano(), SHA256: hex.EncodeToString(sum[:])})
	if b, err := json.MarshalIndent(kept, "", "  "); err == nil {
		tmp := cpath + ".tmp"
		if os.WriteFile(tmp, b, 0o600) == nil {
			os.Rename(tmp, cpath)
		}
	}
	return sum, nil
}
