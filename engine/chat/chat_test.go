package chat_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stokehq/stoke/engine/chat"
	"github.com/stokehq/stoke/models/gguf"
)

// sharedDir is ../shared next to the checkout (STOKE_SHARED overrides).
func sharedDir(t testing.TB) string {
	t.Helper()
	d := os.Getenv("STOKE_SHARED")
	if d == "" {
		d = filepath.Join("..", "..", "..", "shared")
	}
	if _, err := os.Stat(filepath.Join(d, "models")); err != nil {
		t.Skipf("shared models not found at %s (set STOKE_SHARED): %v", d, err)
	}
	return d
}

type chatRef struct {
	Messages []struct {
		Role    string `json:"role"`
		Content string `json:"content"`
	} `json:"messages"`
	AddGenerationPrompt bool    `json:"add_generation_prompt"`
	Rendered            string  `json:"rendered"`
	IDs                 []int32 `json:"ids"`
}

func loadRef(t *testing.T, dir, name string) chatRef {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "models", "ref", name))
	if err != nil {
		t.Fatal(err)
	}
	var r chatRef
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return r
}

func (r chatRef) msgs() []chat.Message {
	var out []chat.Message
	for _, m := range r.Messages {
		out = append(out, chat.Message{Role: m.Role, Content: m.Content})
	}
	return out
}

func qwen3(t *testing.T) (*chat.Template, string) {
	dir := sharedDir(t)
	f, err := gguf.Open(filepath.Join(dir, "models", "qwen3-tiny-random.gguf"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tmpl, err := chat.FromGGUF(f, "", "")
	if err != nil {
		t.Fatal(err)
	}
	return tmpl, dir
}

// TestQwen3Reference renders the real Qwen3 template of qwen3-tiny-random
// and compares with Python jinja2's renders byte for byte.
func TestQwen3Reference(t *testing.T) {
	tmpl, dir := qwen3(t)
	if o := tmpl.Options(); o.Model != "qwen3-tiny-random" || o.BOSToken != "<|endoftext|>" || o.EOSToken != "<|im_end|>" {
		t.Errorf("options from the GGUF = %+v", o)
	}
	for _, name := range []string{"qwen3-tiny-random.chat.c1.gen0.json", "qwen3-tiny-random.chat.c1.gen1.json"} {
		r := loadRef(t, dir, name)
		got, err := tmpl.Render(r.msgs(), r.AddGenerationPrompt)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got != r.Rendered {
			t.Errorf("%s:\n got %q\nwant %q", name, got, r.Rendered)
		}
	}
}

// TestQwen3Conversation checks the parts of the Qwen3 template that one
// user turn does not reach: a system prompt, reasoning stripped from
// earlier turns, tool calls with JSON arguments (tojson of a dict in key
// order), tool responses and enable_thinking. Expected strings are derived
// by reading the template.
func TestQwen3Conversation(t *testing.T) {
	tmpl, _ := qwen3(t)
	cases := []struct {
		name  string
		msgs  []chat.Message
		extra map[string]any
		want  string
	}{
		{
			name: "reasoning stripped",
			msgs: []chat.Message{
				{Role: "system", Content: "S"},
				{Role: "user", Content: "Q1"},
				{Role: "assistant", Content: "<think>\nr\n</think>\n\nA1"},
				{Role: "user", Content: "Q2"},
			},
			want: "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nQ1<|im_end|>\n<|im_start|>assistant\nA1<|im_end|>\n" +
				"<|im_start|>user\nQ2<|im_end|>\n<|im_start|>assistant\n",
		},
		{
			name: "tool call",
			msgs: []chat.Message{
				{Role: "user", Content: "W?"},
				{Role: "assistant", ToolCalls: []chat.ToolCall{{ID: "c1", Name: "get_weather", Arguments: `{"city":"Paris","n":2}`}}},
				{Role: "tool", Content: "sunny", ToolCallID: "c1"},
			},
			want: "<|im_start|>user\nW?<|im_end|>\n<|im_start|>assistant\n<tool_call>\n" +
				`{"name": "get_weather", "arguments": {"city": "Paris", "n": 2}}` + "\n</tool_call><|im_end|>\n" +
				"<|im_start|>user\n<tool_response>\nsunny\n</tool_response><|im_end|>\n<|im_start|>assistant\n",
		},
		{
			name:  "enable_thinking false",
			msgs:  []chat.Message{{Role: "user", Content: "Hi"}},
			extra: map[string]any{"enable_thinking": false},
			want:  "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n",
		},
	}
	for _, c := range cases {
		got, err := tmpl.RenderWith(c.msgs, true, c.extra)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if got != c.want {
			t.Errorf("%s:\n got %q\nwant %q", c.name, got, c.want)
		}
	}
}

// TestBuiltins renders the well-known templates against strings derived
// by reading each template by hand.
func TestBuiltins(t *testing.T) {
	sys := chat.Message{Role: "system", Content: "Sys"}
	hi := chat.Message{Role: "user", Content: " Hi "}
	hello := chat.Message{Role: "assistant", Content: "Hello "}
	again := chat.Message{Role: "user", Content: "Again"}
	cases := []struct {
		name     string
		bos, eos string
		msgs     []chat.Message
		gen      bool
		want     string
	}{
		{"chatml", "", "<|im_end|>", []chat.Message{sys, hi}, true,
			"<|im_start|>system\nSys<|im_end|>\n<|im_start|>user\n Hi <|im_end|>\n<|im_start|>assistant\n"},
		{"llama2", "<s>", "</s>", []chat.Message{sys, hi, hello, again}, true,
			"<s>[INST] <<SYS>>\nSys\n<</SYS>>\n\n Hi [/INST] Hello </s><s>[INST] Again [/INST]"},
		{"llama2", "<s>", "</s>", []chat.Message{hi}, false, "<s>[INST] Hi [/INST]"},
		{"llama3", "<|begin_of_text|>", "<|eot_id|>", []chat.Message{sys, hi}, true,
			"<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nSys<|eot_id|>" +
				"<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"},
		{"llama3", "<|begin_of_text|>", "<|eot_id|>", []chat.Message{hi}, false,
			"<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"},
		{"mistral", "<s>", "</s>", []chat.Message{hi, hello, again}, true,
			"<s>[INST]  Hi  [/INST]Hello </s>[INST] Again [/INST]"},
		{"zephyr", "<s>", "</s>", []chat.Message{sys, hi}, true,
			"<|system|>\nSys</s>\n<|user|>\n Hi </s>\n<|assistant|>\n"},
		{"zephyr", "<s>", "</s>", []chat.Message{hi, hello}, false,
			"<|user|>\n Hi </s>\n<|assistant|>\nHello </s>\n"},
		{"gemma", "<bos>", "<eos>", []chat.Message{hi, hello, again}, true,
			"<bos><start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\nHello<end_of_turn>\n" +
				"<start_of_turn>user\nAgain<end_of_turn>\n<start_of_turn>model\n"},
	}
	for _, c := range cases {
		src, ok := chat.Builtin(c.name)
		if !ok {
			t.Fatalf("no built-in %q", c.name)
		}
		tmpl, err := chat.Compile(src, chat.Options{Model: c.name, BOSToken: c.bos, EOSToken: c.eos})
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		got, err := tmpl.Render(c.msgs, c.gen)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if got != c.want {
			t.Errorf("%s:\n got %q\nwant %q", c.name, got, c.want)
		}
	}
}

func TestRaiseException(t *testing.T) {
	for _, name := range []string{"llama2", "mistral", "gemma"} {
		src, _ := chat.Builtin(name)
		tmpl, err := chat.Compile(src, chat.Options{Model: "m-" + name})
		if err != nil {
			t.Fatal(err)
		}
		_, err = tmpl.Render([]chat.Message{{Role: "user", Content: "a"}, {Role: "user", Content: "b"}}, true)
		var re *chat.RenderError
		if !errors.As(err, &re) || !strings.Contains(err.Error(), "must alternate") || !strings.Contains(err.Error(), "m-"+name) {
			t.Errorf("%s: two user turns: err = %v, want a RenderError naming the model and the template's message", name, err)
		}
	}
}

func TestCompileErrors(t *testing.T) {
	for _, src := range []string{
		"",
		"   \n",
		"{% for m in messages %}{{ m.content }}",
		"{{ messages[0].content ",
		"{% endfor %}",
		"{% if x %}a{% else %}b{% else %}c{% endif %}",
	} {
		_, err := chat.Compile(src, chat.Options{Model: "broken"})
		if err == nil {
			t.Errorf("Compile(%q) succeeded", src)
			continue
		}
		if !strings.Contains(err.Error(), "model broken") {
			t.Errorf("Compile(%q): %v does not name the model", src, err)
		}
	}
	// unknown filters fail at render, naming the filter
	tmpl, err := chat.Compile("{{ messages | no_such_filter }}", chat.Options{Model: "m"})
	if err == nil {
		_, err = tmpl.Render(nil, true)
	}
	if err == nil || !strings.Contains(err.Error(), "no_such_filter") {
		t.Errorf("unknown filter: err = %v, want it named", err)
	}
}

func TestOverride(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "t.jinja")
	const src = "{% for m in messages %}[{{ m.role }}]{{ m.content }}{% endfor %}"
	if err := os.WriteFile(file, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "tokenizer_config.json")
	b, _ := json.Marshal(map[string]any{"bos_token": "<s>", "chat_template": src})
	if err := os.WriteFile(cfg, b, 0o644); err != nil {
		t.Fatal(err)
	}
	chatml, _ := chat.Builtin("chatml")
	for in, want := range map[string]string{file: src, cfg: src, src: src, "chatml": chatml} {
		got, err := chat.Override(in)
		if err != nil || got != want {
			t.Errorf("Override(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := chat.Override(filepath.Join(dir, "missing.jinja")); err == nil || !strings.Contains(err.Error(), "chatml") {
		t.Errorf("missing file: err = %v, want one listing the built-in names", err)
	}
}

func TestFromGGUF(t *testing.T) {
	w := gguf.NewWriter(3)
	w.AddKV("general.name", gguf.String("tiny"))
	w.AddKV("tokenizer.ggml.tokens", gguf.Strings([]string{"<unk>", "<s>", "</s>"}))
	w.AddKV("tokenizer.ggml.bos_token_id", gguf.Uint32(1))
	w.AddKV("tokenizer.ggml.eos_token_id", gguf.Uint32(2))
	var buf bytes.Buffer
	if _, err := w.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	f, err := gguf.Parse(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	_, err = chat.FromGGUF(f, "", "")
	if !errors.Is(err, chat.ErrNoTemplate) || !strings.Contains(err.Error(), "--chat-template") || !strings.Contains(err.Error(), "tiny") {
		t.Errorf("no template: err = %v, want ErrNoTemplate naming the model and suggesting --chat-template", err)
	}
	tmpl, err := chat.FromGGUF(f, "served-name", "llama2")
	if err != nil {
		t.Fatal(err)
	}
	got, err := tmpl.Render([]chat.Message{{Role: "user", Content: "x"}, {Role: "assistant", Content: "y"}}, false)
	if want := "<s>[INST] x [/INST] y </s>"; err != nil || got != want {
		t.Errorf("override on a GGUF: %q, %v; want %q", got, err, want)
	}
	if tmpl.Options().Model != "served-name" {
		t.Errorf("model name %q, want served-name", tmpl.Options().Model)
	}
}

// TestConcurrentRender renders one template from many goroutines (run
// with -race).
func TestConcurrentRender(t *testing.T) {
	src, _ := chat.Builtin("chatml")
	tmpl, err := chat.Compile(src, chat.Options{})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan string)
	for i := range 8 {
		go func() {
			s, err := tmpl.Render([]chat.Message{{Role: "user", Content: strings.Repeat("x", i)}}, true)
			if err != nil {
				s = err.Error()
			}
			done <- s
		}()
	}
	for range 8 {
		if s := <-done; !strings.HasPrefix(s, "<|im_start|>user\n") {
			t.Errorf("render: %q", s)
		}
	}
}
