package openai

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"

	"github.com/stokehq/stoke/engine"
	"github.com/stokehq/stoke/engine/chat"
)

// Request limits.
const (
	MaxStops        = 4       // stop sequences per request, as OpenAI allows
	MaxStopBytes    = 1024    // bytes in one stop sequence
	maxRepeatLastN  = 1 << 30 // repeat_last_n -1 ("the whole context") becomes this
	maxJSONDepthReq = 128     // nesting in chat_template_kwargs
)

// request is a decoded and validated chat or completion request.
type request struct {
	Model string

	// chat
	Messages     []chat.Message
	TemplateArgs map[string]any // chat_template_kwargs

	// completions: Prompt, or PromptIDs when the prompt was token ids
	Prompt    string
	PromptIDs []int32
	Echo      bool

	Stream       bool
	IncludeUsage bool
	Params       engine.GenerateParams
	Seeded       bool // the request gave a seed; else the server picks one
}

// wireCommon holds the fields shared by both endpoints, as sent. Pointers
// tell an absent (or null) field from a zero.
type wireCommon struct {
	Model               *string         `json:"model"`
	MaxTokens           *int            `json:"max_tokens"`
	MaxCompletionTokens *int            `json:"max_completion_tokens"`
	Temperature         *float64        `json:"temperature"`
	TopP                *float64        `json:"top_p"`
	Seed                *int64          `json:"seed"`
	Stop                json.RawMessage `json:"stop"`
	N                   *int            `json:"n"`
	PresencePenalty     *float64        `json:"presence_penalty"`
	FrequencyPenalty    *float64        `json:"frequency_penalty"`
	LogitBias           map[string]any  `json:"logit_bias"`
	Stream              *bool           `json:"stream"`
	StreamOptions       *struct {
		IncludeUsage *bool `json:"include_usage"`
	} `json:"stream_options"`
	User *string `json:"user"`

	// extensions, named as llama.cpp's server names them
	TopK          *int     `json:"top_k"`
	MinP          *float64 `json:"min_p"`
	RepeatPenalty *float64 `json:"repeat_penalty"`
	RepeatLastN   *int     `json:"repeat_last_n"`
	IgnoreEOS     *bool    `json:"ignore_eos"`
}

type wireChat struct {
	wireCommon
	Messages           json.RawMessage `json:"messages"`
	Logprobs           *bool           `json:"logprobs"`
	TopLogprobs        *int            `json:"top_logprobs"`
	Tools              json.RawMessage `json:"tools"`
	ResponseFormat     json.RawMessage `json:"response_format"`
	ChatTemplateKwargs json.RawMessage `json:"chat_template_kwargs"`
}

type wireCompletion struct {
	wireCommon
	Prompt   json.RawMessage `json:"prompt"`
	Echo     *bool           `json:"echo"`
	Logprobs *int            `json:"logprobs"`
	Suffix   *string         `json:"suffix"`
	BestOf   *int            `json:"best_of"`
}

type wireMessage struct {
	Role             *string         `json:"role"`
	Content          json.RawMessage `json:"content"`
	Name             *string         `json:"name"`
	ToolCalls        []wireToolCall  `json:"tool_calls"`
	ToolCallID       *string         `json:"tool_call_id"`
	ReasoningContent *string         `json:"reasoning_content"`
}

type wireToolCall struct {
	ID       string `json:"id"`
	Type     string `json:"type"`
	Function struct {
		Name      string `json:"name"`
		Arguments string `json:"arguments"`
	} `json:"function"`
}

type wirePart struct {
	Type string  `json:"type"`
	Text *string `json:"text"`
}

// decodeChat decodes and validates a /v1/chat/completions body. defaults
// are the sampler settings for parameters the request leaves out.
func decodeChat(body []byte, defaults engine.SamplerParams) (*request, *APIError) {
	var w wireChat
	if e := unmarshal(body, &w); e != nil {
		return nil, e
	}
	r, e := w.wireCommon.decode(defaults)
	if e != nil {
		return nil, e
	}
	if w.Logprobs != nil && *w.Logprobs {
		return nil, invalid("logprobs", codeUnsupported, "logprobs are not supported yet")
	}
	if w.TopLogprobs != nil && *w.TopLogprobs != 0 {
		return nil, invalid("top_logprobs", codeUnsupported, "top_logprobs is not supported yet (logprobs are not)")
	}
	if !isNull(w.Tools) {
		var tools []json.RawMessage
		if json.Unmarshal(w.Tools, &tools) != nil {
			return nil, invalid("tools", codeInvalidType, "tools must be an array")
		}
		if len(tools) > 0 {
			return nil, invalid("tools", codeUnsupported, "tools (function calling) are not supported yet")
		}
	}
	if !isNull(w.ResponseFormat) {
		var rf struct {
			Type string `json:"type"`
		}
		if json.Unmarshal(w.ResponseFormat, &rf) != nil {
			return nil, invalid("response_format", codeInvalidType, "response_format must be an object with a type")
		}
		if rf.Type != "text" {
			return nil, invalid("response_format", codeUnsupported, "response_format %q is not supported yet; only \"text\" is", rf.Type)
		}
	}
	if !isNull(w.ChatTemplateKwargs) {
		args, err := decodeObject(w.ChatTemplateKwargs)
		if err != nil {
			return nil, invalid("chat_template_kwargs", codeInvalidType, "chat_template_kwargs must be a JSON object: %v", err)
		}
		if len(args) > 0 {
			r.TemplateArgs = args
		}
	}
	if isNull(w.Messages) {
		return nil, invalid("messages", codeMissing, "you must provide messages")
	}
	var msgs []json.RawMessage
	if json.Unmarshal(w.Messages, &msgs) != nil {
		return nil, invalid("messages", codeInvalidType, "messages must be an array of message objects")
	}
	if len(msgs) == 0 {
		return nil, invalid("messages", codeInvalidValue, "messages must not be empty")
	}
	r.Messages = make([]chat.Message, len(msgs))
	for i, raw := range msgs {
		m, e := decodeMessage(raw, fmt.Sprintf("messages[%d]", i))
		if e != nil {
			return nil, e
		}
		r.Messages[i] = m
	}
	return r, nil
}

// Roles a message may have; developer is OpenAI's newer name for system.
var roles = map[string]string{"system": "system", "developer": "system", "user": "user", "assistant": "assistant", "tool": "tool"}

func decodeMessage(raw json.RawMessage, param string) (chat.Message, *APIError) {
	var w wireMessage
	if err := json.Unmarshal(raw, &w); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return chat.Message{}, invalid(param+"."+te.Field, codeInvalidType, "%s.%s must be of type %s, not %s", param, te.Field, te.Type, te.Value)
		}
		return chat.Message{}, invalid(param, codeInvalidType, "%s must be a message object", param)
	}
	if w.Role == nil {
		return chat.Message{}, invalid(param+".role", codeMissing, "%s.role is missing", param)
	}
	role, ok := roles[*w.Role]
	if !ok {
		return chat.Message{}, invalid(param+".role", codeInvalidValue, "%s.role %q is not one of system, developer, user, assistant, tool", param, *w.Role)
	}
	m := chat.Message{Role: role}
	if w.Name != nil {
		m.Name = *w.Name
	}
	if w.ToolCallID != nil {
		m.ToolCallID = *w.ToolCallID
	}
	if w.ReasoningContent != nil {
		m.Reasoning = *w.ReasoningContent
	}
	switch {
	case isNull(w.Content):
		if role != "assistant" {
			return chat.Message{}, invalid(param+".content", codeMissing, "%s.content is missing", param)
		}
	case w.Content[0] == '"':
		if err := json.Unmarshal(w.Content, &m.Content); err != nil {
			return chat.Message{}, invalid(param+".content", codeInvalidType, "%s.content is not a valid string", param)
		}
	case w.Content[0] == '[':
		var parts []wirePart
		if err := json.Unmarshal(w.Content, &parts); err != nil {
			return chat.Message{}, invalid(param+".content", codeInvalidType, "%s.content must be a string or an array of content parts", param)
		}
		texts := make([]string, 0, len(parts))
		for j, p := range parts {
			if p.Type != "text" {
				return chat.Message{}, invalid(fmt.Sprintf("%s.content[%d].type", param, j), codeUnsupported,
					"%s.content[%d] has type %q: this model takes text only", param, j, p.Type)
			}
			if p.Text == nil {
				return chat.Message{}, invalid(fmt.Sprintf("%s.content[%d].text", param, j), codeMissing, "%s.content[%d].text is missing", param, j)
			}
			texts = append(texts, *p.Text)
		}
		m.Content = strings.Join(texts, "\n")
	default:
		return chat.Message{}, invalid(param+".content", codeInvalidType, "%s.content must be a string or an array of content parts", param)
	}
	if len(w.ToolCalls) > 0 && role != "assistant" {
		return chat.Message{}, invalid(param+".tool_calls", codeInvalidValue, "%s: only assistant messages have tool_calls", param)
	}
	for j, c := range w.ToolCalls {
		if c.Type != "" && c.Type != "function" {
			return chat.Message{}, invalid(fmt.Sprintf("%s.tool_calls[%d].type", param, j), codeInvalidValue, "tool call type %q is not \"function\"", c.Type)
		}
		if c.Function.Name == "" {
			return chat.Message{}, invalid(fmt.Sprintf("%s.tool_calls[%d].function.name", param, j), codeMissing, "a tool call needs a function name")
		}
		m.ToolCalls = append(m.ToolCalls, chat.ToolCall{ID: c.ID, Name: c.Function.Name, Arguments: c.Function.Arguments})
	}
	return m, nil
}

// decodeCompletion decodes and validates a /v1/completions body.
func decodeCompletion(body []byte, defaults engine.SamplerParams) (*request, *APIError) {
	var w wireCompletion
	if e := unmarshal(body, &w); e != nil {
		return nil, e
	}
	r, e := w.wireCommon.decode(defaults)
	if e != nil {
		return nil, e
	}
	if w.Logprobs != nil && *w.Logprobs != 0 {
		return nil, invalid("logprobs", codeUnsupported, "logprobs are not supported yet")
	}
	if w.Suffix != nil && *w.Suffix != "" {
		return nil, invalid("suffix", codeUnsupported, "suffix (insertion) is not supported")
	}
	if w.BestOf != nil && *w.BestOf != 1 {
		return nil, invalid("best_of", codeUnsupported, "best_of must be 1: one completion per request is supported")
	}
	r.Echo = w.Echo != nil && *w.Echo
	if isNull(w.Prompt) {
		return nil, invalid("prompt", codeMissing, "you must provide a prompt")
	}
	if e := r.decodePrompt(w.Prompt); e != nil {
		return nil, e
	}
	return r, nil
}

// decodePrompt accepts a string, token ids, or an array holding one of
// either (several prompts per request are not supported).
func (r *request) decodePrompt(raw json.RawMessage) *APIError {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		r.Prompt = s
		return nil
	}
	var ids []int32
	if json.Unmarshal(raw, &ids) == nil && len(ids) > 0 {
		r.PromptIDs = ids
		return nil
	}
	var list []json.RawMessage
	if json.Unmarshal(raw, &list) != nil {
		return invalid("prompt", codeInvalidType, "prompt must be a string, an array of token ids, or an array holding one of those")
	}
	if len(list) != 1 {
		return invalid("prompt", codeUnsupported, "prompt has %d elements: one prompt per request is supported", len(list))
	}
	if json.Unmarshal(list[0], &s) == nil {
		r.Prompt = s
		return nil
	}
	if json.Unmarshal(list[0], &ids) == nil && len(ids) > 0 {
		r.PromptIDs = ids
		return nil
	}
	return invalid("prompt", codeInvalidType, "prompt must be a string, an array of token ids, or an array holding one of those")
}

// decode validates the shared fields and builds the generation parameters.
func (w *wireCommon) decode(defaults engine.SamplerParams) (*request, *APIError) {
	r := &request{}
	if w.Model != nil {
		r.Model = *w.Model
	}
	if w.N != nil && *w.N != 1 {
		return nil, invalid("n", codeUnsupported, "n must be 1: one choice per request is supported")
	}
	if len(w.LogitBias) > 0 {
		return nil, invalid("logit_bias", codeUnsupported, "logit_bias is not supported yet")
	}
	r.Stream = w.Stream != nil && *w.Stream
	if w.StreamOptions != nil {
		if !r.Stream {
			return nil, invalid("stream_options", codeInvalidValue, "stream_options is only allowed when stream is true")
		}
		r.IncludeUsage = w.StreamOptions.IncludeUsage != nil && *w.StreamOptions.IncludeUsage
	}
	p := &r.Params
	switch {
	case w.MaxCompletionTokens != nil:
		if *w.MaxCompletionTokens < 1 {
			return nil, invalid("max_completion_tokens", codeInvalidValue, "max_completion_tokens is %d; it must be at least 1", *w.MaxCompletionTokens)
		}
		p.MaxTokens = *w.MaxCompletionTokens
	case w.MaxTokens != nil:
		if *w.MaxTokens < 1 {
			return nil, invalid("max_tokens", codeInvalidValue, "max_tokens is %d; it must be at least 1", *w.MaxTokens)
		}
		p.MaxTokens = *w.MaxTokens
	}
	if !isNull(w.Stop) {
		var one string
		var list []string
		switch {
		case json.Unmarshal(w.Stop, &one) == nil:
			list = []string{one}
		case json.Unmarshal(w.Stop, &list) == nil:
			if len(list) > MaxStops {
				return nil, invalid("stop", codeInvalidValue, "stop has %d sequences; at most %d are allowed", len(list), MaxStops)
			}
		default:
			return nil, invalid("stop", codeInvalidType, "stop must be a string or an array of strings")
		}
		for _, s := range list {
			if len(s) > MaxStopBytes {
				return nil, invalid("stop", codeInvalidValue, "a stop sequence is %d bytes; at most %d are allowed", len(s), MaxStopBytes)
			}
			if s != "" {
				p.Stop = append(p.Stop, s)
			}
		}
	}
	p.IgnoreEOS = w.IgnoreEOS != nil && *w.IgnoreEOS

	sp := defaults
	if w.Seed != nil {
		sp.Seed = uint64(*w.Seed)
		r.Seeded = true
	}
	if v := w.Temperature; v != nil {
		if f := float32(*v); !(f >= 0 && f <= 2) {
			return nil, invalid("temperature", codeInvalidValue, "temperature is %g; it must be between 0 and 2", *v)
		}
		sp.Temperature = float32(*v)
	}
	if v := w.TopP; v != nil {
		f := float32(*v)
		if !(f >= 0 && f <= 1) {
			return nil, invalid("top_p", codeInvalidValue, "top_p is %g; it must be between 0 and 1", *v)
		}
		if f == 0 {
			// the nucleus of probability mass 0 is the most likely token
			sp.TopP, sp.Temperature = 1, 0
		} else {
			sp.TopP = f
		}
	}
	if v := w.PresencePenalty; v != nil {
		if f := float32(*v); !(f >= -2 && f <= 2) {
			return nil, invalid("presence_penalty", codeInvalidValue, "presence_penalty is %g; it must be between -2 and 2", *v)
		}
		sp.PresencePenalty = float32(*v)
	}
	if v := w.FrequencyPenalty; v != nil {
		if f := float32(*v); !(f >= -2 && f <= 2) {
			return nil, invalid("frequency_penalty", codeInvalidValue, "frequency_penalty is %g; it must be between -2 and 2", *v)
		}
		sp.FrequencyPenalty = float32(*v)
	}
	if v := w.TopK; v != nil {
		if *v < 0 {
			return nil, invalid("top_k", codeInvalidValue, "top_k is %d; it must be ≥ 0 (0 disables it)", *v)
		}
		sp.TopK = *v
	}
	if v := w.MinP; v != nil {
		if f := float32(*v); !(f >= 0 && f < 1) {
			return nil, invalid("min_p", codeInvalidValue, "min_p is %g; it must be in [0, 1)", *v)
		}
		sp.MinP = float32(*v)
	}
	if v := w.RepeatPenalty; v != nil {
		if f := float32(*v); !(f > 0 && f <= math.MaxFloat32) {
			return nil, invalid("repeat_penalty", codeInvalidValue, "repeat_penalty is %g; it must be > 0 (1 disables it)", *v)
		}
		sp.RepeatPenalty = float32(*v)
	}
	if v := w.RepeatLastN; v != nil {
		switch {
		case *v == -1:
			sp.RepeatLastN = maxRepeatLastN
		case *v < 0 || *v > maxRepeatLastN:
			return nil, invalid("repeat_last_n", codeInvalidValue, "repeat_last_n is %d; it must be ≥ 0, or -1 for the whole context", *v)
		default:
			sp.RepeatLastN = *v
		}
	}
	if err := sp.Validate(); err != nil {
		// the checks above keep every field in range; this is a guard
		return nil, invalid("", codeInvalidValue, "%v", err)
	}
	p.Sampler = sp
	return r, nil
}

// unmarshal decodes a request body into v, answering JSON errors as OpenAI
// does: 400 with the parameter of a wrong type named.
func unmarshal(body []byte, v any) *APIError {
	if len(bytes.TrimSpace(body)) == 0 {
		return invalid("", "", "the request body is empty: send a JSON object")
	}
	err := json.Unmarshal(body, v)
	if err == nil {
		return nil
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		if te.Field == "" {
			return invalid("", codeInvalidType, "the request body must be a JSON object, not %s", te.Value)
		}
		field := strings.ReplaceAll(te.Field, "wireCommon.", "")
		return invalid(field, codeInvalidType, "%s must be of type %s, not %s", field, jsonType(te.Type.String()), te.Value)
	}
	return invalid("", "", "we could not parse the JSON body of your request: %v", err)
}

// jsonType names a Go type the way a JSON user knows it.
func jsonType(goType string) string {
	goType = strings.TrimPrefix(goType, "*")
	switch {
	case strings.HasPrefix(goType, "int"), strings.HasPrefix(goType, "uint"):
		return "integer"
	case strings.HasPrefix(goType, "float"):
		return "number"
	case goType == "bool":
		return "boolean"
	case goType == "string":
		return "string"
	case strings.HasPrefix(goType, "[]"):
		return "array"
	case strings.HasPrefix(goType, "map["), strings.HasPrefix(goType, "struct"):
		return "object"
	}
	return goType
}

func isNull(raw json.RawMessage) bool {
	return len(raw) == 0 || string(raw) == "null"
}

// decodeObject decodes a JSON object, numbers kept as json.Number so that
// templates print integers as integers.
func decodeObject(raw json.RawMessage) (map[string]any, error) {
	if depth(raw) > maxJSONDepthReq {
		return nil, errors.New("nested too deeply")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, err
	}
	return m, nil
}

// depth is the deepest nesting of arrays and objects in valid JSON text.
func depth(raw []byte) int {
	d, most := 0, 0
	in := false
	for i := 0; i < len(raw); i++ {
		switch c := raw[i]; {
		case in && c == '\\':
			i++
		case c == '"':
			in = !in
		case in:
		case c == '{' || c == '[':
			d++
			most = max(most, d)
		case c == '}' || c == ']':
			d--
		}
	}
	return most
}
