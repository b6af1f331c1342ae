package openai

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/stokehq/stoke/engine"
)

// encode writes a decoded request back as a request body that sets every
// parameter explicitly.
func (r *request) encode(isChat bool) []byte {
	sp := r.Params.Sampler
	b := map[string]any{
		"model":             r.Model,
		"temperature":       float64(sp.Temperature),
		"top_p":             float64(sp.TopP),
		"top_k":             sp.TopK,
		"min_p":             float64(sp.MinP),
		"repeat_penalty":    float64(sp.RepeatPenalty),
		"repeat_last_n":     sp.RepeatLastN,
		"presence_penalty":  float64(sp.PresencePenalty),
		"frequency_penalty": float64(sp.FrequencyPenalty),
		"ignore_eos":        r.Params.IgnoreEOS,
		"stream":            r.Stream,
	}
	if r.Seeded {
		b["seed"] = int64(sp.Seed)
	}
	if r.Params.MaxTokens > 0 {
		b["max_tokens"] = r.Params.MaxTokens
	}
	if len(r.Params.Stop) > 0 {
		b["stop"] = r.Params.Stop
	}
	if r.Stream {
		b["stream_options"] = map[string]any{"include_usage": r.IncludeUsage}
	}
	if isChat {
		var msgs []map[string]any
		for _, m := range r.Messages {
			o := map[string]any{"role": m.Role, "content": m.Content}
			if m.Name != "" {
				o["name"] = m.Name
			}
			if m.ToolCallID != "" {
				o["tool_call_id"] = m.ToolCallID
			}
			if m.Reasoning != "" {
				o["reasoning_content"] = m.Reasoning
			}
			var calls []map[string]any
			for _, c := range m.ToolCalls {
				calls = append(calls, map[string]any{"id": c.ID, "type": "function",
					"function": map[string]any{"name": c.Name, "arguments": c.Arguments}})
			}
			if calls != nil {
				o["tool_calls"] = calls
			}
			msgs = append(msgs, o)
		}
		b["messages"] = msgs
		if r.TemplateArgs != nil {
			b["chat_template_kwargs"] = r.TemplateArgs
		}
	} else {
		if r.PromptIDs != nil {
			b["prompt"] = r.PromptIDs
		} else {
			b["prompt"] = r.Prompt
		}
		b["echo"] = r.Echo
	}
	out, err := json.Marshal(b)
	if err != nil {
		panic(err)
	}
	return out
}

func decode(body []byte, isChat bool) (*request, *APIError) {
	if isChat {
		return decodeChat(body, engine.DefaultSampler())
	}
	return decodeCompletion(body, engine.DefaultSampler())
}

// FuzzDecodeRequest feeds arbitrary bodies to the request decoders: they
// must not panic, must answer errors as 400s with a message, and a body
// they accept must re-encode to one that decodes to the same request.
func FuzzDecodeRequest(f *testing.F) {
	for _, s := range []struct {
		body string
		chat bool
	}{
		{`{"model":"m","messages":[{"role":"user","content":"Hi"}]}`, true},
		{`{"messages":[{"role":"system","content":"S"},{"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]}],"temperature":0.2,"top_p":0.5,"seed":-3,"stop":["x","y"],"max_tokens":9,"stream":true,"stream_options":{"include_usage":true}}`, true},
		{`{"messages":[{"role":"developer","content":"d"},{"role":"assistant","content":null,"tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{\"a\":1}"}}]},{"role":"tool","content":"r","tool_call_id":"c"}],"chat_template_kwargs":{"enable_thinking":false,"n":1.5,"l":[1,{"x":null}]}}`, true},
		{`{"messages":[{"role":"user","content":"x"}],"top_k":5,"min_p":0.1,"repeat_penalty":1.3,"repeat_last_n":-1,"ignore_eos":true,"presence_penalty":-2,"frequency_penalty":2,"n":1,"logprobs":false,"user":"u","unknown":[1,2]}`, true},
		{`{"messages":[{"role":"user","content":"x"}],"top_p":0,"max_completion_tokens":3,"stop":"\n"}`, true},
		{`{"messages":[]}`, true},
		{`{"messages":[{"role":"user","content":1}]}`, true},
		{`{"messages":"x","temperature":"hot"}`, true},
		{`{"messages":[{"role":"user","content":"x"}],"n":2}`, true},
		{`{"messages":[{"role":"user","content":"x"}],"chat_template_kwargs":[[[[[]]]]]}`, true},
		{`[`, true},
		{`null`, true},
		{`{"model":"m","prompt":"Once upon a time","max_tokens":16,"echo":true}`, false},
		{`{"prompt":["one"],"seed":1,"temperature":2}`, false},
		{`{"prompt":[1,2,3],"stream":true}`, false},
		{`{"prompt":[[5,6]],"suffix":""}`, false},
		{`{"prompt":["a","b"]}`, false},
		{`{"prompt":[]}`, false},
		{`{"prompt":"x","max_tokens":0}`, false},
		{`{"prompt":"x","logprobs":3,"best_of":2}`, false},
		{`{"prompt":"x","stop":["a","b","c","d","e"]}`, false},
		{`{"prompt":"x","top_p":1e-60,"min_p":0.99999999999}`, false},
	} {
		f.Add([]byte(s.body), s.chat)
	}
	f.Fuzz(func(t *testing.T, body []byte, isChat bool) {
		r, e := decode(body, isChat)
		if e != nil {
			if r != nil || e.Message == "" || e.Type != typeInvalidRequest || e.Status != 400 {
				t.Fatalf("bad error for %q: %+v (request %v)", body, e, r)
			}
			return
		}
		if isChat && len(r.Messages) == 0 {
			t.Fatalf("accepted %q without messages", body)
		}
		if err := r.Params.Sampler.Validate(); err != nil {
			t.Fatalf("accepted %q with invalid sampler: %v", body, err)
		}
		if len(r.Params.Stop) > MaxStops || r.Params.MaxTokens < 0 {
			t.Fatalf("accepted %q: %+v", body, r.Params)
		}
		again := r.encode(isChat)
		r2, e := decode(again, isChat)
		if e != nil {
			t.Fatalf("re-encoded %q from %q is rejected: %v", again, body, e)
		}
		if !reflect.DeepEqual(r, r2) {
			t.Fatalf("round trip of %q through %q:\n%+v\n%+v", body, again, r, r2)
		}
	})
}
