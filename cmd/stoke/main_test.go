package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stokehq/stoke/kernels/cpu"
)

func stoke(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	code := mainErr(context.Background(), args, &out, &errb)
	return out.String(), errb.String(), code
}

func TestSynthInspectRun(t *testing.T) {
	dir := t.TempDir()
	model := filepath.Join(dir, "tiny.gguf")
	if _, e, code := stoke(t, "synth", "--out", model, "--params", "2M", "--dtype", "q4_k", "--seed", "5"); code != 0 {
		t.Fatalf("synth: exit %d: %s", code, e)
	}
	out, e, code := stoke(t, "inspect", model)
	if code != 0 {
		t.Fatalf("inspect: exit %d: %s", code, e)
	}
	for _, want := range []string{"general.architecture", "llama", "blk.0.ffn_down.weight", "Q4_K", "token_embd.weight"} {
		if !strings.Contains(out, want) {
			t.Errorf("inspect output lacks %q", want)
		}
	}

	out, e, code = stoke(t, "run", "-m", model, "-p", "Hello there", "-n", "12", "--temp", "0", "--json")
	if code != 0 {
		t.Fatalf("run: exit %d: %s", code, e)
	}
	var res struct {
		PromptTokens []int32 `json:"prompt_tokens"`
		Tokens       []int32 `json:"tokens"`
		Text         string  `json:"text"`
		PromptTPS    float64 `json:"prompt_tokens_per_s"`
		TPS          float64 `json:"tokens_per_s"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("run --json output is not JSON: %v\n%s", err, out)
	}
	if len(res.PromptTokens) == 0 || res.PromptTPS <= 0 {
		t.Errorf("run --json: %+v", res)
	}
	if len(res.Tokens) > 12 {
		t.Errorf("asked for 12 tokens, got %d", len(res.Tokens))
	}

	// where the weights live changes no token; the default says what it chose
	for _, flag := range []string{"", "--mmap", "--no-mmap"} {
		args := []string{"run", "-m", model, "-p", "Hello there", "-n", "12", "--temp", "0", "--json"}
		if flag != "" {
			args = append(args, flag)
		}
		o, e, code := stoke(t, args...)
		var r struct {
			Tokens []int32 `json:"tokens"`
		}
		if code != 0 || json.Unmarshal([]byte(o), &r) != nil || !slices.Equal(r.Tokens, res.Tokens) {
			t.Errorf("run %s: exit %d, tokens %v, want %v (%s)", flag, code, r.Tokens, res.Tokens, e)
		}
		said := strings.Contains(e, "reading the model into memory") || strings.Contains(e, "mapping the model")
		if said != (flag == "") {
			t.Errorf("run %q: stderr %q", flag, e)
		}
	}

	// streaming mode ends with the speed line
	out, e, code = stoke(t, "run", "-m", model, "-p", "Hi", "-n", "4", "--seed", "3")
	if code != 0 || !strings.Contains(out, "tok/s") || !strings.HasPrefix(out, "Hi") {
		t.Fatalf("run: exit %d, out %q, err %q", code, out, e)
	}
}

// TestRunPacks: a Q4_0 model read into memory is packed for the CPU,
// where that pays, and says so, with --sparse too (its attention; the
// FFN stays in rows for the sparse FFN); mapped, it is not.
func TestRunPacks(t *testing.T) {
	model := filepath.Join(t.TempDir(), "q4.gguf")
	if _, e, code := stoke(t, "synth", "--out", model, "--params", "2M", "--dtype", "q4_0", "--relu", "--seed", "5"); code != 0 {
		t.Fatalf("synth: exit %d: %s", code, e)
	}
	for _, c := range []struct {
		flags []string
		packs bool
	}{
		{[]string{"--no-mmap"}, cpu.Q4x16Pays()},
		{[]string{"--mmap"}, false},
		{[]string{"--no-mmap", "--sparse"}, cpu.Q4x16Pays()},
	} {
		args := append([]string{"run", "-m", model, "-p", "Hello", "-n", "4", "--temp", "0", "--json"}, c.flags...)
		_, e, code := stoke(t, args...)
		if code != 0 {
			t.Fatalf("run %v: exit %d: %s", c.flags, code, e)
		}
		if said := strings.Contains(e, "packed"); said != c.packs {
			t.Errorf("run %v: packed said %v, want %v (stderr %q)", c.flags, said, c.packs, e)
		}
	}
}

func TestCLIErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.gguf")
	os.WriteFile(bad, []byte("GGUF\x03\x00\x00\x00 truncated"), 0o644)
	cases := []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"nope"}, 2, "unknown command"},
		{[]string{"run", "--temp", "-1", "-m", bad}, 2, "temperature"},
		{[]string{"run", "-m", filepath.Join(dir, "missing.gguf")}, 1, "no such file"},
		{[]string{"run", "-m", bad}, 1, "gguf"},
		{[]string{"run", "--mmap", "--no-mmap", "-m", bad}, 2, "contradict"},
		{[]string{"serve", "--mmap", "--no-mmap", "-m", bad}, 2, "contradict"},
		{[]string{"perplexity", "--mmap", "--no-mmap", "-m", bad, "--text", bad}, 2, "contradict"},
		{[]string{"bench", "--mmap", "--no-mmap", "-m", bad}, 2, "contradict"},
		{[]string{"inspect"}, 2, "exactly one"},
		{[]string{"inspect", bad}, 1, "gguf"},
		{[]string{"synth", "--out", filepath.Join(dir, "x.gguf"), "--dtype", "q2_k"}, 2, "dtype"},
		{[]string{"synth", "--params", "lots"}, 2, "--out"},
	}
	for _, c := range cases {
		_, e, code := stoke(t, c.args...)
		if code != c.code || !strings.Contains(e, c.msg) {
			t.Errorf("stoke %q: exit %d, stderr %q; want exit %d mentioning %q", c.args, code, e, c.code, c.msg)
		}
	}
}

func TestParseCount(t *testing.T) {
	for in, want := range map[string]int64{"1B": 1e9, "125M": 125e6, "15e6": 15e6, "2k": 2000, "0.5b": 5e8} {
		if got, err := parseCount(in); err != nil || got != want {
			t.Errorf("parseCount(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "x", "-1M", "0", "9999B"} {
		if _, err := parseCount(in); err == nil {
			t.Errorf("parseCount(%q) accepted", in)
		}
	}
}
