// Package chat renders conversations into prompts with a model's own chat
// template: the Jinja source a GGUF file carries in
// tokenizer.chat_template (Hugging Face's tokenizer_config.json
// chat_template), or one given by the user.
//
// Templates are rendered the way Hugging Face's apply_chat_template does:
// Jinja with trim_blocks and lstrip_blocks, and the variables messages,
// add_generation_prompt, bos_token and eos_token, plus the globals
// raise_exception and strftime_now. The output is text that still holds
// special tokens written out ("<|im_start|>"); tokenize it with special
// token parsing on and without adding BOS/EOS again.
package chat

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"

	"github.com/ardanlabs/jinja"

	"github.com/stokehq/stoke/models/gguf"
)

// GGUF metadata keys read by FromGGUF.
const (
	KeyTemplate = "tokenizer.chat_template"
	keyTokens   = "tokenizer.ggml.tokens"
	keyBOS      = "tokenizer.ggml.bos_token_id"
	keyEOS      = "tokenizer.ggml.eos_token_id"
	keyName     = "general.name"
)

// MaxTemplateBytes bounds a template read from a file or a GGUF file.
const MaxTemplateBytes = 1 << 20

// ErrNoTemplate is returned by FromGGUF for a model without a chat template
// and no override.
var ErrNoTemplate = errors.New("chat: the model has no chat template")

// Message is one turn of a conversation as templates see it. Only the
// fields that are set reach the template (Name, ToolCalls, ToolCallID and
// Reasoning are left undefined when empty, which many templates test with
// "is defined").
type Message struct {
	Role       string
	Content    string
	Name       string
	ToolCalls  []ToolCall
	ToolCallID string
	Reasoning  string // reasoning_content of an earlier assistant turn
}

// ToolCall is a function call made by an assistant turn, as OpenAI's API
// carries it: Arguments is JSON text.
type ToolCall struct {
	ID        string
	Name      string
	Arguments string
}

// Options describe the model a template belongs to.
type Options struct {
	Model    string // names the model in error messages
	BOSToken string // the text of the BOS token ("<s>", "<|begin_of_text|>")
	EOSToken string // the text of the EOS token ("</s>", "<|im_end|>")
}

// Template is a compiled chat template. It is safe for concurrent use.
type Template struct {
	o   Options
	src string
	t   *jinja.Template
}

// Compile compiles template source.
func Compile(src string, o Options) (*Template, error) {
	if strings.TrimSpace(src) == "" {
		return nil, fmt.Errorf("chat: %s: the chat template is empty", o.model())
	}
	t, err := compile(src)
	if err != nil {
		return nil, fmt.Errorf("chat: %s: the chat template does not compile: %w", o.model(), err)
	}
	return &Template{o: o, src: src, t: t}, nil
}

// compile guards against a template that makes the Jinja parser panic: a
// user's file must not take the server down.
func compile(src string) (t *jinja.Template, err error) {
	defer func() {
		if r := recover(); r != nil {
			t, err = nil, fmt.Errorf("parser failure: %v", r)
		}
	}()
	return jinja.Compile(src)
}

func (o Options) model() string {
	if o.Model == "" {
		return "model"
	}
	return "model " + o.Model
}

// Source is the template's Jinja source.
func (t *Template) Source() string { return t.src }

// Options are the options the template was compiled with.
func (t *Template) Options() Options { return t.o }

// Render renders msgs. With addGenerationPrompt the output ends with the
// header of an assistant turn, ready for the model to continue.
func (t *Template) Render(msgs []Message, addGenerationPrompt bool) (string, error) {
	return t.RenderWith(msgs, addGenerationPrompt, nil)
}

// RenderWith is Render with extra template variables (Hugging Face's
// apply_chat_template kwargs, such as enable_thinking). The standard
// variables win over extras of the same name.
func (t *Template) RenderWith(msgs []Message, addGenerationPrompt bool, extra map[string]any) (out string, err error) {
	data := make(map[string]jinja.Value, len(extra)+4)
	for _, k := range slices.Sorted(maps.Keys(extra)) {
		data[k] = jinja.FromGoValue(extra[k])
	}
	list := make([]jinja.Value, len(msgs))
	for i, m := range msgs {
		list[i] = m.value()
	}
	data["messages"] = jinja.NewList(list)
	data["add_generation_prompt"] = jinja.NewBool(addGenerationPrompt)
	data["bos_token"] = jinja.NewString(t.o.BOSToken)
	data["eos_token"] = jinja.NewString(t.o.EOSToken)
	defer func() {
		if r := recover(); r != nil {
			out, err = "", fmt.Errorf("chat: %s: the chat template failed: %v", t.o.model(), r)
		}
	}()
	out, err = t.t.RenderValues(data)
	if err != nil {
		return "", &RenderError{Model: t.o.Model, Err: err}
	}
	return out, nil
}

// RenderError is a template that failed at render time: a construct the
// engine does not support, or the template's own raise_exception (for
// example "Conversation roles must alternate user/assistant/..."), which is
// usually the request's fault.
type RenderError struct {
	Model string
	Err   error
}

func (e *RenderError) Error() string {
	return fmt.Sprintf("chat: %s: the chat template failed to render: %v", Options{Model: e.Model}.model(), e.Err)
}

func (e *RenderError) Unwrap() error { return e.Err }

// value converts m to the dict a template sees, keys in the order Hugging
// Face's messages have them.
func (m Message) value() jinja.Value {
	v := jinja.NewDict()
	d := v.AsDict()
	d.Set("role", jinja.NewString(m.Role))
	d.Set("content", jinja.NewString(m.Content))
	if m.Name != "" {
		d.Set("name", jinja.NewString(m.Name))
	}
	if m.Reasoning != "" {
		d.Set("reasoning_content", jinja.NewString(m.Reasoning))
	}
	if len(m.ToolCalls) > 0 {
		calls := make([]jinja.Value, len(m.ToolCalls))
		for i, c := range m.ToolCalls {
			calls[i] = c.value()
		}
		d.Set("tool_calls", jinja.NewList(calls))
	}
	if m.ToolCallID != "" {
		d.Set("tool_call_id", jinja.NewString(m.ToolCallID))
	}
	return v
}

// value is {"id", "type": "function", "function": {"name", "arguments"}}.
// Arguments that hold a JSON object are given as a dict (keys in their
// order), as Hugging Face templates expect ("arguments | tojson"); anything
// else stays the string it was.
func (c ToolCall) value() jinja.Value {
	fn := jinja.NewDict()
	fn.AsDict().Set("name", jinja.NewString(c.Name))
	args := jinja.NewString(c.Arguments)
	if a, err := parseJSON(c.Arguments); err == nil && a.IsDict() {
		args = a
	}
	fn.AsDict().Set("arguments", args)
	v := jinja.NewDict()
	d := v.AsDict()
	if c.ID != "" {
		d.Set("id", jinja.NewString(c.ID))
	}
	d.Set("type", jinja.NewString("function"))
	d.Set("function", fn)
	return v
}

// maxJSONDepth bounds nesting in tool-call arguments.
const maxJSONDepth = 64

// parseJSON decodes JSON text into a template value, keeping the order of
// object keys (Python dicts keep it, and tojson must print the same text).
func parseJSON(s string) (jinja.Value, error) {
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	v, err := jsonValue(dec, 0)
	if err != nil {
		return jinja.Value{}, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return jinja.Value{}, errors.New("trailing data after JSON value")
	}
	return v, nil
}

func jsonValue(dec *json.Decoder, depth int) (jinja.Value, error) {
	if depth > maxJSONDepth {
		return jinja.Value{}, errors.New("JSON nested too deeply")
	}
	tok, err := dec.Token()
	if err != nil {
		return jinja.Value{}, err
	}
	switch x := tok.(type) {
	case json.Delim:
		switch x {
		case '{':
			v := jinja.NewDict()
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return jinja.Value{}, err
				}
				k, _ := kt.(string)
				e, err := jsonValue(dec, depth+1)
				if err != nil {
					return jinja.Value{}, err
				}
				v.AsDict().Set(k, e)
			}
			_, err := dec.Token() // '}'
			return v, err
		case '[':
			var items []jinja.Value
			for dec.More() {
				e, err := jsonValue(dec, depth+1)
				if err != nil {
					return jinja.Value{}, err
				}
				items = append(items, e)
			}
			_, err := dec.Token() // ']'
			return jinja.NewList(items), err
		}
		return jinja.Value{}, fmt.Errorf("unexpected %v", x)
	default:
		return jinja.FromGoValue(x), nil
	}
}

// FromGGUF compiles the chat template of a GGUF file, or override when it is
// not empty (see Override). bos_token and eos_token are the texts of the
// file's BOS and EOS tokens; the model is named by general.name, or name
// when given.
func FromGGUF(f *gguf.File, name, override string) (*Template, error) {
	o := Options{Model: name}
	if o.Model == "" {
		o.Model, _ = f.String(keyName)
	}
	if v, ok := f.Get(keyTokens); ok {
		o.BOSToken = tokenText(f, v, keyBOS)
		o.EOSToken = tokenText(f, v, keyEOS)
	}
	src := ""
	if override != "" {
		var err error
		if src, err = Override(override); err != nil {
			return nil, err
		}
	} else {
		var ok bool
		src, ok = f.String(KeyTemplate)
		if !ok || strings.TrimSpace(src) == "" {
			return nil, fmt.Errorf("%w (%s has no %s); give one with --chat-template: a Jinja file, a template, or one of the built-in names %s",
				ErrNoTemplate, o.model(), KeyTemplate, strings.Join(BuiltinNames(), ", "))
		}
		if len(src) > MaxTemplateBytes {
			return nil, fmt.Errorf("chat: %s: the chat template is %d bytes, more than the limit of %d", o.model(), len(src), MaxTemplateBytes)
		}
	}
	return Compile(src, o)
}

func tokenText(f *gguf.File, tokens gguf.Value, key string) string {
	id, ok := f.Uint(key)
	if !ok || id >= uint64(tokens.Len()) {
		return ""
	}
	s, _ := tokens.Index(int(id)).String()
	return s
}

// Override resolves a --chat-template value to template source: the name of
// a built-in template (BuiltinNames), a literal template (text containing
// "{{" or "{%"), or the path of a file holding one.
func Override(s string) (string, error) {
	if src, ok := builtins[s]; ok {
		return src, nil
	}
	if strings.Contains(s, "{{") || strings.Contains(s, "{%") {
		return s, nil
	}
	f, err := os.Open(s)
	if err != nil {
		return "", fmt.Errorf("chat: --chat-template %q is not a built-in name (%s), not a template and not a readable file: %w",
			s, strings.Join(BuiltinNames(), ", "), err)
	}
	defer f.Close()
	var b bytes.Buffer
	if _, err := io.Copy(&b, io.LimitReader(f, MaxTemplateBytes+1)); err != nil {
		return "", fmt.Errorf("chat: reading %s: %w", s, err)
	}
	if b.Len() > MaxTemplateBytes {
		return "", fmt.Errorf("chat: %s is larger than the limit of %d bytes for a chat template", s, MaxTemplateBytes)
	}
	src := b.String()
	// A Hugging Face tokenizer_config.json holds the template as a field.
	if strings.HasSuffix(s, ".json") {
		var cfg struct {
			ChatTemplate json.RawMessage `json:"chat_template"`
		}
		if json.Unmarshal(b.Bytes(), &cfg) == nil && len(cfg.ChatTemplate) > 0 {
			var t string
			if err := json.Unmarshal(cfg.ChatTemplate, &t); err != nil {
				return "", fmt.Errorf("chat: %s: chat_template is not a string (templates chosen by name are not supported)", s)
			}
			src = t
		}
	}
	return src, nil
}
