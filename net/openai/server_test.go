package openai_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stokehq/stoke/engine"
	"github.com/stokehq/stoke/engine/chat"
	"github.com/stokehq/stoke/net/openai"
)

const modelName = "tiny-test"

var quiet = slog.New(slog.DiscardHandler)

func newTestServer(t testing.TB, b openai.Backend, mod func(*openai.Config)) *httptest.Server {
	t.Helper()
	src, _ := chat.Builtin("chatml")
	tmpl, err := chat.Compile(src, chat.Options{Model: modelName})
	if err != nil {
		t.Fatal(err)
	}
	cfg := openai.Config{ModelName: modelName, Backend: b, Tok: byteTok{}, ContextTokens: 256, Template: tmpl, Logger: quiet}
	if mod != nil {
		mod(&cfg)
	}
	s, err := openai.NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	return ts
}

func chatBody(extra string) string {
	b := `{"model":"` + modelName + `","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Hi"}],"seed":7,"max_tokens":6`
	if extra != "" {
		b += "," + extra
	}
	return b + "}"
}

func TestChatCompletion(t *testing.T) {
	fb := &fakeBackend{ctx: 256}
	ts := newTestServer(t, fb, nil)
	resp := post(t, ts.URL+"/v1/chat/completions", chatBody(`"temperature":0.5,"top_p":0.9,"presence_penalty":1,"frequency_penalty":-0.5,"top_k":7,"min_p":0.1,"repeat_penalty":1.1,"stop":["zz"],"user":"u1","unknown_field":{"x":[1]}`))
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		t.Fatalf("status %d, content type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	var c openai.ChatCompletion
	decodeJSON(t, resp, &c)
	if !strings.HasPrefix(c.ID, "chatcmpl-") || len(c.ID) < 20 || c.Object != "chat.completion" || c.Model != modelName ||
		c.Created < time.Now().Add(-time.Minute).Unix() {
		t.Errorf("header fields: %+v", c)
	}
	if len(c.Choices) != 1 || c.Choices[0].Message.Role != "assistant" || c.Choices[0].FinishReason != "length" || c.Choices[0].Index != 0 {
		t.Fatalf("choices: %+v", c.Choices)
	}
	want := "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
	if got := (byteTok{}).Decode(fb.lastIDs); got != want || fb.lastIDs[0] != 1 {
		t.Errorf("prompt %q (first id %d), want BOS + %q", got, fb.lastIDs[0], want)
	}
	u := c.Usage
	if u == nil || u.PromptTokens != len(fb.lastIDs) || u.CompletionTokens != 6 || u.TotalTokens != u.PromptTokens+6 {
		t.Errorf("usage %+v", u)
	}
	p := fb.lastSeen
	sp := p.Sampler
	if p.MaxTokens != 6 || sp.Seed != 7 || sp.Temperature != 0.5 || sp.TopP != 0.9 || sp.PresencePenalty != 1 || sp.FrequencyPenalty != -0.5 ||
		sp.TopK != 7 || sp.MinP != 0.1 || sp.RepeatPenalty != 1.1 || !slices.Equal(p.Stop, []string{"zz"}) {
		t.Errorf("params reaching the backend: %+v", p)
	}
}

// TestResponseShape checks the keys of each object against OpenAI's.
func TestResponseShape(t *testing.T) {
	ts := newTestServer(t, &fakeBackend{ctx: 256}, nil)
	keys := func(m map[string]any) []string { return slices.Sorted(maps.Keys(m)) }
	var c map[string]any
	resp := post(t, ts.URL+"/v1/chat/completions", chatBody(""))
	json.NewDecoder(resp.Body).Decode(&c)
	resp.Body.Close()
	if got := keys(c); !slices.Equal(got, []string{"choices", "created", "id", "model", "object", "usage"}) {
		t.Errorf("chat.completion keys %v", got)
	}
	ch := c["choices"].([]any)[0].(map[string]any)
	if got := keys(ch); !slices.Equal(got, []string{"finish_reason", "index", "logprobs", "message"}) {
		t.Errorf("choice keys %v", got)
	}
	if got := keys(ch["message"].(map[string]any)); !slices.Equal(got, []string{"content", "refusal", "role"}) {
		t.Errorf("message keys %v", got)
	}
	if got := keys(c["usage"].(map[string]any)); !slices.Equal(got, []string{"completion_tokens", "prompt_tokens", "total_tokens"}) {
		t.Errorf("usage keys %v", got)
	}
	resp = post(t, ts.URL+"/v1/chat/completions", chatBody(`"stream":true`))
	evs := readSSE(t, resp.Body)
	resp.Body.Close()
	var first map[string]any
	json.Unmarshal([]byte(evs[0]), &first)
	if got := keys(first); !slices.Equal(got, []string{"choices", "created", "id", "model", "object"}) {
		t.Errorf("chunk keys %v", got)
	}
	d := first["choices"].([]any)[0].(map[string]any)
	if got := keys(d); !slices.Equal(got, []string{"delta", "finish_reason", "index", "logprobs"}) || d["finish_reason"] != nil {
		t.Errorf("chunk choice %v", d)
	}
	if dd := d["delta"].(map[string]any); dd["role"] != "assistant" || dd["content"] != "" {
		t.Errorf("first delta %v", dd)
	}
	var last map[string]any
	json.Unmarshal([]byte(evs[len(evs)-2]), &last)
	lc := last["choices"].([]any)[0].(map[string]any)
	if lc["finish_reason"] != "length" || len(lc["delta"].(map[string]any)) != 0 {
		t.Errorf("last chunk %v", last)
	}
}

func streamChat(t testing.TB, url, body string) (text string, chunks []openai.ChatChunk) {
	t.Helper()
	resp := post(t, url+"/v1/chat/completions", body)
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("status %d, content type %q: %s", resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}
	evs := readSSE(t, resp.Body)
	if len(evs) < 3 || evs[len(evs)-1] != "[DONE]" {
		t.Fatalf("events %q: want at least a role, a finish event and [DONE]", evs)
	}
	var sb strings.Builder
	for _, ev := range evs[:len(evs)-1] {
		var c openai.ChatChunk
		if err := json.Unmarshal([]byte(ev), &c); err != nil {
			t.Fatalf("event %q: %v", ev, err)
		}
		if c.Object != "chat.completion.chunk" || c.Model != modelName || !strings.HasPrefix(c.ID, "chatcmpl-") {
			t.Errorf("chunk %+v", c)
		}
		if len(chunks) > 0 && (c.ID != chunks[0].ID || c.Created != chunks[0].Created) {
			t.Errorf("chunk id/created changed: %q %d then %q %d", chunks[0].ID, chunks[0].Created, c.ID, c.Created)
		}
		for _, ch := range c.Choices {
			if ch.Delta.Content != nil {
				sb.WriteString(*ch.Delta.Content)
			}
		}
		chunks = append(chunks, c)
	}
	return sb.String(), chunks
}

func TestChatStreamEqualsWhole(t *testing.T) {
	ts := newTestServer(t, &fakeBackend{ctx: 256}, nil)
	var whole openai.ChatCompletion
	decodeJSON(t, post(t, ts.URL+"/v1/chat/completions", chatBody("")), &whole)
	text, chunks := streamChat(t, ts.URL, chatBody(`"stream":true`))
	if text != whole.Choices[0].Message.Content || text == "" {
		t.Errorf("streamed %q, whole %q", text, whole.Choices[0].Message.Content)
	}
	if c := chunks[0].Choices[0]; c.Delta.Role != "assistant" || c.Delta.Content == nil || *c.Delta.Content != "" || c.FinishReason != nil {
		t.Errorf("first chunk %+v", c)
	}
	last := chunks[len(chunks)-1]
	if c := last.Choices[0]; c.FinishReason == nil || *c.FinishReason != "length" || c.Delta.Content != nil || c.Delta.Role != "" {
		t.Errorf("last chunk %+v", c)
	}
	for i, c := range chunks {
		if c.Usage != nil {
			t.Errorf("chunk %d has usage %s without include_usage", i, c.Usage)
		}
		if i > 0 && i < len(chunks)-1 && (c.Choices[0].Delta.Content == nil || *c.Choices[0].Delta.Content == "") {
			t.Errorf("chunk %d carries no text: %+v", i, c.Choices[0])
		}
	}
	// a different seed gives a different text (the seed reaches the backend)
	var other openai.ChatCompletion
	decodeJSON(t, post(t, ts.URL+"/v1/chat/completions", strings.Replace(chatBody(""), `"seed":7`, `"seed":8`, 1)), &other)
	if other.Choices[0].Message.Content == whole.Choices[0].Message.Content {
		t.Errorf("seeds 7 and 8 gave the same text %q", whole.Choices[0].Message.Content)
	}
}

func TestIncludeUsage(t *testing.T) {
	ts := newTestServer(t, &fakeBackend{ctx: 256}, nil)
	_, chunks := streamChat(t, ts.URL, chatBody(`"stream":true,"stream_options":{"include_usage":true}`))
	last := chunks[len(chunks)-1]
	if last.Choices == nil || len(last.Choices) != 0 {
		t.Errorf("usage chunk choices %v, want []", last.Choices)
	}
	var u openai.Usage
	if err := json.Unmarshal(last.Usage, &u); err != nil || u.CompletionTokens != 6 || u.TotalTokens != u.PromptTokens+6 || u.PromptTokens == 0 {
		t.Errorf("usage %s (%v)", last.Usage, err)
	}
	for _, c := range chunks[:len(chunks)-1] {
		if string(c.Usage) != "null" {
			t.Errorf("chunk usage %q, want null", c.Usage)
		}
	}
	// include_usage false: no usage at all
	_, chunks = streamChat(t, ts.URL, chatBody(`"stream":true,"stream_options":{"include_usage":false}`))
	for _, c := range chunks {
		if c.Usage != nil {
			t.Errorf("usage %s without include_usage", c.Usage)
		}
	}
}

func TestStop(t *testing.T) {
	ts := newTestServer(t, &fakeBackend{ctx: 256}, nil)
	var whole openai.ChatCompletion
	decodeJSON(t, post(t, ts.URL+"/v1/chat/completions", chatBody("")), &whole)
	full := whole.Choices[0].Message.Content
	words := strings.Fields(full)
	if len(words) < 3 {
		t.Fatalf("text %q too short for the test", full)
	}
	stop := words[2]
	body := chatBody(`"stop":"` + stop + `"`)
	decodeJSON(t, post(t, ts.URL+"/v1/chat/completions", body), &whole)
	if got := whole.Choices[0].Message.Content; strings.Contains(got, stop) || whole.Choices[0].FinishReason != "stop" {
		t.Errorf("stop %q: text %q, finish %q", stop, got, whole.Choices[0].FinishReason)
	}
	text, chunks := streamChat(t, ts.URL, strings.Replace(body, "{", `{"stream":true,`, 1))
	if text != whole.Choices[0].Message.Content || *chunks[len(chunks)-1].Choices[0].FinishReason != "stop" {
		t.Errorf("streamed %q, whole %q", text, whole.Choices[0].Message.Content)
	}
}

func TestCompletions(t *testing.T) {
	fb := &fakeBackend{ctx: 256}
	ts := newTestServer(t, fb, nil)
	var whole openai.TextCompletion
	decodeJSON(t, post(t, ts.URL+"/v1/completions", `{"model":"tiny-test","prompt":"Once","max_tokens":5,"seed":3}`), &whole)
	if !strings.HasPrefix(whole.ID, "cmpl-") || whole.Object != "text_completion" || len(whole.Choices) != 1 ||
		whole.Choices[0].FinishReason == nil || *whole.Choices[0].FinishReason != "length" || whole.Choices[0].Text == "" {
		t.Fatalf("completion %+v", whole)
	}
	if !slices.Equal(fb.lastIDs, (byteTok{}).Encode("Once", true, true)) {
		t.Errorf("prompt ids %v", fb.lastIDs)
	}
	var u openai.Usage
	if json.Unmarshal(whole.Usage, &u); u.PromptTokens != 5 || u.CompletionTokens != 5 || u.TotalTokens != 10 {
		t.Errorf("usage %s", whole.Usage)
	}
	same := []string{
		`{"model":"tiny-test","prompt":["Once"],"max_tokens":5,"seed":3}`,
		`{"model":"tiny-test","prompt":[1,82,113,102,104],"max_tokens":5,"seed":3}`,
		`{"model":"tiny-test","prompt":[[1,82,113,102,104]],"max_tokens":5,"seed":3}`,
	}
	for _, b := range same {
		var c openai.TextCompletion
		decodeJSON(t, post(t, ts.URL+"/v1/completions", b), &c)
		if c.Choices[0].Text != whole.Choices[0].Text {
			t.Errorf("%s: text %q, want %q", b, c.Choices[0].Text, whole.Choices[0].Text)
		}
	}
	var echo openai.TextCompletion
	decodeJSON(t, post(t, ts.URL+"/v1/completions", `{"prompt":"Once","max_tokens":5,"seed":3,"echo":true}`), &echo)
	if echo.Choices[0].Text != "Once"+whole.Choices[0].Text {
		t.Errorf("echo: %q", echo.Choices[0].Text)
	}
	// streamed
	resp := post(t, ts.URL+"/v1/completions", `{"prompt":"Once","max_tokens":5,"seed":3,"stream":true,"echo":true,"stream_options":{"include_usage":true}}`)
	evs := readSSE(t, resp.Body)
	resp.Body.Close()
	if evs[len(evs)-1] != "[DONE]" {
		t.Fatalf("events %q", evs)
	}
	var sb strings.Builder
	var last openai.TextCompletion
	for i, ev := range evs[:len(evs)-1] {
		var c openai.TextCompletion
		if err := json.Unmarshal([]byte(ev), &c); err != nil || c.Object != "text_completion" {
			t.Fatalf("event %q: %v", ev, err)
		}
		if i < len(evs)-2 {
			if len(c.Choices) != 1 {
				t.Fatalf("event %q", ev)
			}
			sb.WriteString(c.Choices[0].Text)
		}
		last = c
	}
	if sb.String() != "Once"+whole.Choices[0].Text {
		t.Errorf("streamed %q, want %q", sb.String(), "Once"+whole.Choices[0].Text)
	}
	if len(last.Choices) != 0 || json.Unmarshal(last.Usage, &u) != nil || u.CompletionTokens != 5 {
		t.Errorf("last event %+v", last)
	}
}

type apiErr struct {
	Error struct {
		Message string `json:"message"`
		Type    string `json:"type"`
		Param   any    `json:"param"`
		Code    any    `json:"code"`
	} `json:"error"`
}

func TestErrors(t *testing.T) {
	ts := newTestServer(t, &fakeBackend{ctx: 256}, func(c *openai.Config) { c.MaxBodyBytes = 4096 })
	long := strings.Repeat("x", 300)
	cases := []struct {
		name, path, body string
		status           int
		param, code      string // "" for null
	}{
		{"malformed json", "/v1/chat/completions", `{"messages": [`, 400, "", ""},
		{"not an object", "/v1/chat/completions", `[1,2]`, 400, "", "invalid_type"},
		{"empty body", "/v1/chat/completions", ``, 400, "", ""},
		{"trailing garbage", "/v1/chat/completions", chatBody("") + "x", 400, "", ""},
		{"temperature string", "/v1/chat/completions", chatBody(`"temperature":"hot"`), 400, "temperature", "invalid_type"},
		{"max_tokens float", "/v1/chat/completions", chatBody(`"max_tokens":1.5`), 400, "max_tokens", "invalid_type"},
		{"stream string", "/v1/chat/completions", chatBody(`"stream":"yes"`), 400, "stream", "invalid_type"},
		{"seed string", "/v1/chat/completions", chatBody(`"seed":"1"`), 400, "seed", "invalid_type"},
		{"stop number", "/v1/chat/completions", chatBody(`"stop":5`), 400, "stop", "invalid_type"},
		{"stop five", "/v1/chat/completions", chatBody(`"stop":["a","b","c","d","e"]`), 400, "stop", "invalid_value"},
		{"messages string", "/v1/chat/completions", `{"messages":"hi"}`, 400, "messages", "invalid_type"},
		{"messages missing", "/v1/chat/completions", `{"model":"tiny-test"}`, 400, "messages", "missing_required_parameter"},
		{"messages empty", "/v1/chat/completions", `{"messages":[]}`, 400, "messages", "invalid_value"},
		{"message no role", "/v1/chat/completions", `{"messages":[{"content":"x"}]}`, 400, "messages[0].role", "missing_required_parameter"},
		{"message bad role", "/v1/chat/completions", `{"messages":[{"role":"wizard","content":"x"}]}`, 400, "messages[0].role", "invalid_value"},
		{"message role number", "/v1/chat/completions", `{"messages":[{"role":1,"content":"x"}]}`, 400, "messages[0].role", "invalid_type"},
		{"content number", "/v1/chat/completions", `{"messages":[{"role":"user","content":1}]}`, 400, "messages[0].content", "invalid_type"},
		{"content missing", "/v1/chat/completions", `{"messages":[{"role":"user"}]}`, 400, "messages[0].content", "missing_required_parameter"},
		{"image part", "/v1/chat/completions", `{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"x"}}]}]}`, 400, "messages[0].content[0].type", "unsupported_parameter"},
		{"n 2", "/v1/chat/completions", chatBody(`"n":2`), 400, "n", "unsupported_parameter"},
		{"logprobs", "/v1/chat/completions", chatBody(`"logprobs":true`), 400, "logprobs", "unsupported_parameter"},
		{"tools", "/v1/chat/completions", chatBody(`"tools":[{"type":"function","function":{"name":"f"}}]`), 400, "tools", "unsupported_parameter"},
		{"json mode", "/v1/chat/completions", chatBody(`"response_format":{"type":"json_object"}`), 400, "response_format", "unsupported_parameter"},
		{"max_tokens 0", "/v1/chat/completions", chatBody(`"max_completion_tokens":0`), 400, "max_completion_tokens", "invalid_value"},
		{"max_tokens -1", "/v1/completions", `{"prompt":"x","max_tokens":-1}`, 400, "max_tokens", "invalid_value"},
		{"temperature 3", "/v1/chat/completions", chatBody(`"temperature":3`), 400, "temperature", "invalid_value"},
		{"top_p 2", "/v1/chat/completions", chatBody(`"top_p":2`), 400, "top_p", "invalid_value"},
		{"presence 3", "/v1/chat/completions", chatBody(`"presence_penalty":3`), 400, "presence_penalty", "invalid_value"},
		{"top_k -1", "/v1/chat/completions", chatBody(`"top_k":-1`), 400, "top_k", "invalid_value"},
		{"stream_options alone", "/v1/chat/completions", chatBody(`"stream_options":{"include_usage":true}`), 400, "stream_options", "invalid_value"},
		{"unknown model", "/v1/chat/completions", `{"model":"gpt-4o","messages":[{"role":"user","content":"x"}]}`, 404, "", "model_not_found"},
		{"unknown model completions", "/v1/completions", `{"model":"gpt-4o","prompt":"x"}`, 404, "", "model_not_found"},
		{"chat too long", "/v1/chat/completions", `{"messages":[{"role":"user","content":"` + long + `"}]}`, 400, "messages", "context_length_exceeded"},
		{"prompt too long", "/v1/completions", `{"prompt":"` + long + `"}`, 400, "prompt", "context_length_exceeded"},
		{"prompt missing", "/v1/completions", `{"max_tokens":3}`, 400, "prompt", "missing_required_parameter"},
		{"prompt number", "/v1/completions", `{"prompt":3}`, 400, "prompt", "invalid_type"},
		{"two prompts", "/v1/completions", `{"prompt":["a","b"]}`, 400, "prompt", "unsupported_parameter"},
		{"prompt bad id", "/v1/completions", `{"prompt":[1,5000]}`, 400, "prompt", "invalid_value"},
		{"completion logprobs", "/v1/completions", `{"prompt":"x","logprobs":2}`, 400, "logprobs", "unsupported_parameter"},
		{"too large", "/v1/completions", `{"prompt":"` + strings.Repeat("y", 5000) + `"}`, 413, "", ""},
		{"template exception", "/v1/chat/completions", `{"messages":[{"role":"user","content":"x"}],"chat_template_kwargs":[1]}`, 400, "chat_template_kwargs", "invalid_type"},
	}
	for _, c := range cases {
		resp := post(t, ts.URL+c.path, c.body)
		if resp.StatusCode != c.status {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			t.Errorf("%s: status %d, want %d: %s", c.name, resp.StatusCode, c.status, b)
			continue
		}
		var e apiErr
		decodeJSON(t, resp, &e)
		if e.Error.Message == "" || e.Error.Type == "" {
			t.Errorf("%s: error %+v lacks a message or type", c.name, e.Error)
		}
		if p, _ := e.Error.Param.(string); p != c.param || (c.param == "" && e.Error.Param != nil) {
			t.Errorf("%s: param %v, want %q (%s)", c.name, e.Error.Param, c.param, e.Error.Message)
		}
		if code, _ := e.Error.Code.(string); code != c.code || (c.code == "" && e.Error.Code != nil) {
			t.Errorf("%s: code %v, want %q (%s)", c.name, e.Error.Code, c.code, e.Error.Message)
		}
	}

	// methods and paths
	for _, c := range []struct {
		method, path string
		status       int
	}{
		{"GET", "/v1/chat/completions", 405}, {"DELETE", "/v1/models", 405}, {"GET", "/v1/nope", 404}, {"POST", "/health", 405},
		{"GET", "/v1/models/gpt-4", 404},
	} {
		req, _ := http.NewRequest(c.method, ts.URL+c.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var e apiErr
		decodeJSON(t, resp, &e)
		if resp.StatusCode != c.status || e.Error.Message == "" {
			t.Errorf("%s %s: %d %+v, want %d", c.method, c.path, resp.StatusCode, e, c.status)
		}
	}
}

func TestTemplateErrors(t *testing.T) {
	src, _ := chat.Builtin("mistral")
	tmpl, err := chat.Compile(src, chat.Options{Model: modelName})
	if err != nil {
		t.Fatal(err)
	}
	ts := newTestServer(t, &fakeBackend{ctx: 256}, func(c *openai.Config) { c.Template = tmpl })
	resp := post(t, ts.URL+"/v1/chat/completions", `{"messages":[{"role":"user","content":"a"},{"role":"user","content":"b"}]}`)
	var e apiErr
	decodeJSON(t, resp, &e)
	if resp.StatusCode != 400 || !strings.Contains(e.Error.Message, "must alternate") {
		t.Errorf("raise_exception: %d %+v", resp.StatusCode, e)
	}

	ts = newTestServer(t, &fakeBackend{ctx: 256}, func(c *openai.Config) { c.Template, c.TemplateErr = nil, chat.ErrNoTemplate })
	resp = post(t, ts.URL+"/v1/chat/completions", chatBody(""))
	decodeJSON(t, resp, &e)
	if resp.StatusCode != 400 || !strings.Contains(e.Error.Message, "--chat-template") {
		t.Errorf("no template: %d %+v", resp.StatusCode, e)
	}
	resp = post(t, ts.URL+"/v1/completions", `{"prompt":"x","max_tokens":2}`)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("completions without a template: %d", resp.StatusCode)
	}
}

func TestQueueFull(t *testing.T) {
	ts := newTestServer(t, &fakeBackend{ctx: 256, full: true}, nil)
	for _, stream := range []string{"false", "true"} {
		resp := post(t, ts.URL+"/v1/chat/completions", chatBody(`"stream":`+stream))
		var e apiErr
		decodeJSON(t, resp, &e)
		if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" || e.Error.Type != "server_error" {
			t.Errorf("stream %s: %d Retry-After %q %+v", stream, resp.StatusCode, resp.Header.Get("Retry-After"), e)
		}
	}
}

func TestModelsAndHealth(t *testing.T) {
	ts := newTestServer(t, &fakeBackend{ctx: 256}, nil)
	for _, path := range []string{"/v1/models", "/models"} {
		resp, err := http.Get(ts.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		var l openai.ModelList
		decodeJSON(t, resp, &l)
		if l.Object != "list" || len(l.Data) != 1 || l.Data[0].ID != modelName || l.Data[0].Object != "model" || l.Data[0].OwnedBy == "" {
			t.Errorf("%s: %+v", path, l)
		}
	}
	resp, err := http.Get(ts.URL + "/v1/models/" + modelName)
	if err != nil {
		t.Fatal(err)
	}
	var m openai.Model
	decodeJSON(t, resp, &m)
	if m.ID != modelName {
		t.Errorf("model %+v", m)
	}
	resp, err = http.Get(ts.URL + "/health")
	if err != nil {
		t.Fatal(err)
	}
	var h map[string]any
	json.NewDecoder(resp.Body).Decode(&h)
	resp.Body.Close()
	if resp.StatusCode != 200 || h["status"] != "ok" {
		t.Errorf("health %d %v", resp.StatusCode, h)
	}
}

// parseMetrics parses Prometheus text: HELP/TYPE comments and
// `name{labels} value` lines. It fails the test on anything else.
func parseMetrics(t testing.TB, r io.Reader) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	typed := map[string]bool{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "# HELP ") {
			continue
		}
		if f, ok := strings.CutPrefix(line, "# TYPE "); ok {
			parts := strings.Fields(f)
			if len(parts) != 2 || !slices.Contains([]string{"counter", "gauge", "histogram", "summary", "untyped"}, parts[1]) {
				t.Errorf("bad TYPE line %q", line)
			}
			typed[parts[0]] = true
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			t.Errorf("bad metrics line %q", line)
			continue
		}
		name, val := line[:i], line[i+1:]
		v, err := strconv.ParseFloat(val, 64)
		if err != nil {
			t.Errorf("bad value in %q", line)
		}
		base := name
		if j := strings.IndexByte(name, '{'); j >= 0 {
			if !strings.HasSuffix(name, "}") {
				t.Errorf("bad labels in %q", line)
			}
			base = name[:j]
		}
		for _, c := range base {
			if !(c == '_' || c == ':' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
				t.Errorf("bad metric name in %q", line)
				break
			}
		}
		fam := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(base, "_bucket"), "_sum"), "_count")
		if !typed[base] && !typed[fam] {
			t.Errorf("metric %q has no TYPE line", base)
		}
		out[name] = v
	}
	return out
}

func getMetrics(t testing.TB, url string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("metrics content type %q", ct)
	}
	return parseMetrics(t, resp.Body)
}

func TestMetrics(t *testing.T) {
	ts := newTestServer(t, &fakeBackend{ctx: 256}, nil)
	for range 3 {
		resp := post(t, ts.URL+"/v1/chat/completions", chatBody(""))
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	resp := post(t, ts.URL+"/v1/chat/completions", chatBody(`"n":3`))
	resp.Body.Close()
	_, _ = streamChat(t, ts.URL, chatBody(`"stream":true`))
	m := getMetrics(t, ts.URL)
	want := map[string]float64{
		`stoke_requests_total{endpoint="/v1/chat/completions",code="200"}`: 4,
		`stoke_requests_total{endpoint="/v1/chat/completions",code="400"}`: 1,
		`stoke_completion_tokens_total`:                                    24,
		`stoke_time_to_first_token_seconds_count`:                          4,
		`stoke_time_to_first_token_seconds_bucket{le="+Inf"}`:              4,
		`stoke_slots`:              4,
		`stoke_requests_in_flight`: 0,
		`stoke_kv_cache_tokens`:    1024,
	}
	for k, v := range want {
		if got, ok := m[k]; !ok || got != v {
			t.Errorf("%s = %v (present %v), want %v", k, got, ok, v)
		}
	}
	for _, k := range []string{"stoke_prompt_tokens_total", "stoke_queue_depth", "stoke_slots_active", "stoke_kv_cache_used_tokens", "stoke_decode_tokens_per_second_count"} {
		if _, ok := m[k]; !ok {
			t.Errorf("%s missing", k)
		}
	}
	// the sparse FFN's counters: only from a backend that runs one
	for _, k := range []string{"stoke_sparse_ffn_neurons_total", "stoke_sparse_ffn_neurons_computed_total"} {
		if _, ok := m[k]; ok {
			t.Errorf("%s without a sparse FFN", k)
		}
	}
	ts = newTestServer(t, &fakeBackend{ctx: 256, sparse: [2]int64{85, 1000}}, nil)
	m = getMetrics(t, ts.URL)
	if m["stoke_sparse_ffn_neurons_total"] != 1000 || m["stoke_sparse_ffn_neurons_computed_total"] != 85 {
		t.Errorf("sparse FFN counters %v and %v, want 85 of 1000", m["stoke_sparse_ffn_neurons_computed_total"], m["stoke_sparse_ffn_neurons_total"])
	}
}

// TestDisconnect drops a streaming client mid-answer: the backend must see
// its context cancelled (freeing the slot), and the metrics count it.
func TestDisconnect(t *testing.T) {
	fb := &fakeBackend{ctx: 256, delay: 20 * time.Millisecond, started: make(chan struct{}, 1)}
	ts := newTestServer(t, fb, nil)
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "POST", ts.URL+"/v1/chat/completions",
		strings.NewReader(chatBody(`"stream":true,"max_tokens":1000`)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(resp.Body)
	if _, err := br.ReadString('\n'); err != nil { // the first event
		t.Fatal(err)
	}
	cancel()
	resp.Body.Close()
	deadline := time.Now().Add(5 * time.Second)
	for fb.active.Load() != 0 || fb.cancels.Load() != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("backend still active (%d) or not cancelled (%d) after the client left", fb.active.Load(), fb.cancels.Load())
		}
		time.Sleep(5 * time.Millisecond)
	}
	for {
		m := getMetrics(t, ts.URL)
		if m[`stoke_requests_total{endpoint="/v1/chat/completions",code="499"}`] == 1 && m["stoke_client_disconnects_total"] == 1 &&
			m["stoke_slots_active"] == 0 && m["stoke_scheduler_cancelled_total"] == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("metrics do not show the disconnect: %v", m)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestServeGraceful(t *testing.T) {
	for _, c := range []struct {
		name      string
		grace     time.Duration
		tokens    int
		wantWhole bool
	}{
		{"finishes within grace", 5 * time.Second, 10, true},
		{"cancelled after grace", 100 * time.Millisecond, 1000, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			fb := &fakeBackend{ctx: 256, delay: 20 * time.Millisecond, started: make(chan struct{}, 1)}
			src, _ := chat.Builtin("chatml")
			tmpl, _ := chat.Compile(src, chat.Options{})
			s, err := openai.NewServer(openai.Config{ModelName: modelName, Backend: fb, Tok: byteTok{}, ContextTokens: 256, Template: tmpl, Logger: quiet})
			if err != nil {
				t.Fatal(err)
			}
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			ctx, stop := context.WithCancel(context.Background())
			served := make(chan error, 1)
			go func() { served <- openai.ServeListener(ctx, ln, s, openai.ServeOptions{Grace: c.grace, Logger: quiet}) }()
			url := "http://" + ln.Addr().String()
			got := make(chan string, 1)
			go func() {
				resp, err := http.Post(url+"/v1/chat/completions", "application/json",
					strings.NewReader(chatBody(fmt.Sprintf(`"stream":true,"max_tokens":%d`, c.tokens))))
				if err != nil {
					got <- err.Error()
					return
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				got <- string(b)
			}()
			<-fb.started
			stop()
			select {
			case err := <-served:
				if err != nil {
					t.Errorf("ServeListener: %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("ServeListener did not return")
			}
			body := <-got
			if done := strings.HasSuffix(body, "data: [DONE]\n\n"); done != c.wantWhole {
				t.Errorf("answer complete = %v, want %v: %q", done, c.wantWhole, body)
			}
			if fb.active.Load() != 0 {
				t.Errorf("a generation is still running after ServeListener returned")
			}
			if _, err := http.Get(url + "/health"); err == nil {
				t.Errorf("the server still accepts connections")
			}
		})
	}
}

func TestNewServerChecks(t *testing.T) {
	for _, cfg := range []openai.Config{
		{},
		{ModelName: "m", Tok: byteTok{}, ContextTokens: 10},
		{ModelName: "m", Backend: &fakeBackend{}, ContextTokens: 10},
		{Backend: &fakeBackend{}, Tok: byteTok{}, ContextTokens: 10},
		{ModelName: "m", Backend: &fakeBackend{}, Tok: byteTok{}},
		{ModelName: "m", Backend: &fakeBackend{}, Tok: byteTok{}, ContextTokens: 10, Sampler: engine.SamplerParams{Temperature: -1}},
	} {
		if _, err := openai.NewServer(cfg); err == nil {
			t.Errorf("NewServer(%+v) succeeded", cfg)
		}
	}
}
