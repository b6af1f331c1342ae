package openai

import (
	"encoding/json"
	"net/http"
	"time"
)

// Object types, as OpenAI names them.
const (
	objChatCompletion = "chat.completion"
	objChatChunk      = "chat.completion.chunk"
	objTextCompletion = "text_completion"
	objModel          = "model"
	objList           = "list"
)

// Usage counts tokens.
type Usage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
	TotalTokens      int `json:"total_tokens"`
}

func usageOf(prompt, completion int) *Usage {
	return &Usage{PromptTokens: prompt, CompletionTokens: completion, TotalTokens: prompt + completion}
}

// ChatCompletion is the answer of a non-streaming chat request.
type ChatCompletion struct {
	ID      string       `json:"id"`
	Object  string       `json:"object"`
	Created int64        `json:"created"`
	Model   string       `json:"model"`
	Choices []ChatChoice `json:"choices"`
	Usage   *Usage       `json:"usage"`
}

// ChatChoice is one choice of a ChatCompletion.
type ChatChoice struct {
	Index        int         `json:"index"`
	Message      ChatMessage `json:"message"`
	Logprobs     any         `json:"logprobs"`
	FinishReason string      `json:"finish_reason"`
}

// ChatMessage is a generated assistant message.
type ChatMessage struct {
	Role    string `json:"role"`
	Content string `json:"content"`
	Refusal any    `json:"refusal"`
}

// ChatChunk is one server-sent event of a streaming chat request.
// Usage is omitted unless the request set stream_options.include_usage:
// then it is null on every chunk but the last, which has no choices.
type ChatChunk struct {
	ID      string          `json:"id"`
	Object  string          `json:"object"`
	Created int64           `json:"created"`
	Model   string          `json:"model"`
	Choices []ChunkChoice   `json:"choices"`
	Usage   json.RawMessage `json:"usage,omitempty"`
}

// ChunkChoice is the choice of a ChatChunk.
type ChunkChoice struct {
	Index        int     `json:"index"`
	Delta        Delta   `json:"delta"`
	Logprobs     any     `json:"logprobs"`
	FinishReason *string `json:"finish_reason"`
}

// Delta is the new part of the message in a ChatChunk.
type Delta struct {
	Role    string  `json:"role,omitempty"`
	Content *string `json:"content,omitempty"`
}

// TextCompletion is the answer of a completions request, and each event of
// a streaming one (with Usage as in ChatChunk).
type TextCompletion struct {
	ID      string          `json:"id"`
	Object  string          `json:"object"`
	Created int64           `json:"created"`
	Model   string          `json:"model"`
	Choices []TextChoice    `json:"choices"`
	Usage   json.RawMessage `json:"usage,omitempty"`
}

// TextChoice is one choice of a TextCompletion.
type TextChoice struct {
	Text         string  `json:"text"`
	Index        int     `json:"index"`
	Logprobs     any     `json:"logprobs"`
	FinishReason *string `json:"finish_reason"`
}

// Model describes the served model in /v1/models.
type Model struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	OwnedBy string `json:"owned_by"`
}

// ModelList is the answer of /v1/models.
type ModelList struct {
	Object string  `json:"object"`
	Data   []Model `json:"data"`
}

var jsonNull = json.RawMessage("null")

func rawUsage(u *Usage) json.RawMessage {
	b, _ := json.Marshal(u)
	return b
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeError(w, &APIError{Status: http.StatusInternalServerError, Type: typeServer, Message: "encoding the response: " + err.Error()})
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

// sse writes server-sent events as OpenAI streams them: "data: JSON\n\n"
// per event and "data: [DONE]\n\n" at the end. Headers go out with the
// first event, so errors found before it still get a proper status.
type sse struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	timeout time.Duration // per write: a client that stops reading is dropped
	started bool
}

func newSSE(w http.ResponseWriter, timeout time.Duration) *sse {
	return &sse{w: w, rc: http.NewResponseController(w), timeout: timeout}
}

func (s *sse) start() {
	if s.started {
		return
	}
	s.started = true
	h := s.w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no") // tell nginx-like proxies not to buffer
	s.w.WriteHeader(http.StatusOK)
}

func (s *sse) event(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return s.write(append(append([]byte("data: "), b...), '\n', '\n'))
}

func (s *sse) done() error { return s.write([]byte("data: [DONE]\n\n")) }

func (s *sse) write(b []byte) error {
	s.start()
	if s.timeout > 0 {
		s.rc.SetWriteDeadline(time.Now().Add(s.timeout))
	}
	if _, err := s.w.Write(b); err != nil {
		return err
	}
	return s.rc.Flush()
}
