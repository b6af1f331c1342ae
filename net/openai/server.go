// Package openai serves a model over an OpenAI-compatible HTTP API:
// POST /v1/chat/completions and /v1/completions (streamed as server-sent
// events or answered whole), GET /v1/models, /health and /metrics
// (Prometheus text).
//
// Requests are decoded strictly where OpenAI is strict (a known field of
// the wrong type, an out-of-range value, n > 1 are 400 errors naming the
// parameter) and leniently where it is lenient (unknown fields are
// ignored). Errors have OpenAI's shape:
//
//	{"error": {"message": "...", "type": "invalid_request_error", "param": "temperature", "code": null}}
//
// Generation runs on a Backend (engine.Scheduler), with the request's
// context: a client that disconnects frees its slot.
//
// Beyond OpenAI's parameters, requests may set top_k, min_p,
// repeat_penalty, repeat_last_n and ignore_eos (as llama.cpp's server
// names them) and, for chat, chat_template_kwargs (extra template
// variables such as enable_thinking). Parameters left out take the
// server's sampler defaults (llama.cpp's: temperature 0.8, top_k 40,
// top_p 0.95, min_p 0.05); a request without seed gets a random one.
package openai

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net/http"
	"sync"
	"time"

	"github.com/stokehq/stoke/engine"
	"github.com/stokehq/stoke/engine/chat"
)

// Backend generates text: engine.Scheduler implements it.
type Backend interface {
	// Generate blocks until the generation ends, calling emit for each
	// token in the caller's goroutine; cancelling ctx or an error from
	// emit stops it and frees its slot.
	Generate(ctx context.Context, prompt []int32, p engine.GenerateParams, emit func(engine.Token) error) (*engine.Result, error)
	Stats() engine.SchedulerStats
}

// Tokenizer is what the server needs of models/tokenizer.Tokenizer.
type Tokenizer interface {
	Encode(text string, addSpecial, parseSpecial bool) []int32
	Decode(ids []int32) string
	BOS() int32
	AddBOS() bool
	VocabSize() int
}

// Defaults.
const (
	DefaultMaxBodyBytes = 8 << 20
	DefaultWriteTimeout = 30 * time.Second // per streamed event
	DefaultBodyTimeout  = 30 * time.Second // to read a request body
	retryAfterSeconds   = 1
)

// Config configures a Server.
type Config struct {
	ModelName     string    // the id clients must send as model
	Backend       Backend   // runs generations
	Tok           Tokenizer // the model's tokenizer
	ContextTokens int       // context of one slot: prompts must be shorter

	// Template renders chat requests. When nil, chat requests fail with
	// TemplateErr (why there is none) and completions still work.
	Template    *chat.Template
	TemplateErr error

	Sampler      engine.SamplerParams // defaults for parameters a request leaves out (zero: engine.DefaultSampler())
	MaxBodyBytes int64                // request body limit (0: DefaultMaxBodyBytes)
	WriteTimeout time.Duration        // per streamed event (0: DefaultWriteTimeout)
	Created      time.Time            // the model's "created" time in /v1/models (zero: now)
	Logger       *slog.Logger         // one line per generation at Info (nil: slog.Default())
}

// Server is the HTTP handler.
type Server struct {
	cfg     Config
	mux     *http.ServeMux
	metrics *metrics
	start   time.Time
	log     *slog.Logger
}

// Endpoints, also the "endpoint" label of stoke_requests_total.
const (
	pathChat        = "/v1/chat/completions"
	pathCompletions = "/v1/completions"
	pathModels      = "/v1/models"
	pathHealth      = "/health"
	pathMetrics     = "/metrics"
)

// NewServer checks cfg and builds the handler.
func NewServer(cfg Config) (*Server, error) {
	switch {
	case cfg.Backend == nil:
		return nil, errors.New("openai: no backend")
	case cfg.Tok == nil:
		return nil, errors.New("openai: no tokenizer")
	case cfg.ModelName == "":
		return nil, errors.New("openai: no model name")
	case cfg.ContextTokens <= 1:
		return nil, fmt.Errorf("openai: context of %d tokens", cfg.ContextTokens)
	}
	if cfg.Sampler == (engine.SamplerParams{}) {
		cfg.Sampler = engine.DefaultSampler()
	}
	if err := cfg.Sampler.Validate(); err != nil {
		return nil, fmt.Errorf("openai: default sampler: %w", err)
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = DefaultWriteTimeout
	}
	if cfg.Template == nil && cfg.TemplateErr == nil {
		cfg.TemplateErr = chat.ErrNoTemplate
	}
	s := &Server{cfg: cfg, mux: http.NewServeMux(), metrics: newMetrics(), start: time.Now(), log: cfg.Logger}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.cfg.Created.IsZero() {
		s.cfg.Created = s.start
	}
	for _, prefix := range []string{"/v1", ""} { // llama.cpp also answers without /v1
		s.handle("POST "+prefix+"/chat/completions", pathChat, s.chatCompletions)
		s.handle("POST "+prefix+"/completions", pathCompletions, s.completions)
		s.handle("GET "+prefix+"/models", pathModels, s.models)
		s.handle("GET "+prefix+"/models/{id...}", pathModels, s.model)
	}
	s.handle("GET "+pathHealth, pathHealth, s.health)
	s.handle("GET "+pathMetrics, pathMetrics, s.serveMetrics)
	s.handle("/", "other", s.notFound)
	return s, nil
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// handle registers h, counting its answers under endpoint.
func (s *Server) handle(pattern, endpoint string, h http.HandlerFunc) {
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w}
		h(sw, r)
		code := sw.status
		switch {
		case sw.gone:
			code = statusClientClosed
		case code == 0:
			code = http.StatusOK
		}
		s.metrics.request(endpoint, code)
	})
}

// statusWriter records the status of an answer.
type statusWriter struct {
	http.ResponseWriter
	status int
	gone   bool // the client went away
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func clientGone(w http.ResponseWriter) {
	if sw, ok := w.(*statusWriter); ok {
		sw.gone = true
	}
}

var knownPaths = map[string]string{
	"/v1/chat/completions": "POST", "/chat/completions": "POST",
	"/v1/completions": "POST", "/completions": "POST",
	"/v1/models": "GET", "/models": "GET", pathHealth: "GET", pathMetrics: "GET",
}

func (s *Server) notFound(w http.ResponseWriter, r *http.Request) {
	if m, ok := knownPaths[r.URL.Path]; ok {
		w.Header().Set("Allow", m)
		writeError(w, &APIError{Status: http.StatusMethodNotAllowed, Type: typeInvalidRequest,
			Message: fmt.Sprintf("%s %s is not allowed; use %s", r.Method, r.URL.Path, m)})
		return
	}
	writeError(w, &APIError{Status: http.StatusNotFound, Type: typeInvalidRequest,
		Message: fmt.Sprintf("unknown URL %s %s", r.Method, r.URL.Path)})
}

func (s *Server) health(w http.ResponseWriter, _ *http.Request) {
	st := s.cfg.Backend.Stats()
	writeJSON(w, http.StatusOK, map[string]any{
		"status": "ok", "slots_idle": st.Slots - st.Active, "slots_processing": st.Active, "queued": st.Queued,
	})
}

func (s *Server) modelObject() Model {
	return Model{ID: s.cfg.ModelName, Object: objModel, Created: s.cfg.Created.Unix(), OwnedBy: "stoke"}
}

func (s *Server) models(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, ModelList{Object: objList, Data: []Model{s.modelObject()}})
}

func (s *Server) model(w http.ResponseWriter, r *http.Request) {
	if id := r.PathValue("id"); id != s.cfg.ModelName {
		writeError(w, modelNotFound(id))
		return
	}
	writeJSON(w, http.StatusOK, s.modelObject())
}

func modelNotFound(name string) *APIError {
	return &APIError{Status: http.StatusNotFound, Type: typeInvalidRequest, Code: codeModelNotFound,
		Message: fmt.Sprintf("The model `%s` does not exist or you do not have access to it.", name)}
}

// checkModel accepts the served name, or no name at all (some clients
// leave it out when a server has one model).
func (s *Server) checkModel(name string) *APIError {
	if name != "" && name != s.cfg.ModelName {
		return modelNotFound(name)
	}
	return nil
}

// readBody reads a request body within the size limit and a deadline.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request) ([]byte, *APIError) {
	rc := http.NewResponseController(w)
	if rc.SetReadDeadline(time.Now().Add(DefaultBodyTimeout)) == nil {
		// no read deadline while streaming: it would cancel the request
		defer rc.SetReadDeadline(time.Time{})
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes))
	if err != nil {
		if errors.As(err, new(*http.MaxBytesError)) {
			return nil, &APIError{Status: http.StatusRequestEntityTooLarge, Type: typeInvalidRequest,
				Message: fmt.Sprintf("the request body is larger than the limit of %d bytes", s.cfg.MaxBodyBytes)}
		}
		return nil, invalid("", "", "reading the request body: %v", err)
	}
	return body, nil
}

func (s *Server) chatCompletions(w http.ResponseWriter, r *http.Request) {
	t0 := time.Now()
	body, e := s.readBody(w, r)
	if e != nil {
		writeError(w, e)
		return
	}
	req, e := decodeChat(body, s.cfg.Sampler)
	if e == nil {
		e = s.checkModel(req.Model)
	}
	if e != nil {
		writeError(w, e)
		return
	}
	if s.cfg.Template == nil {
		writeError(w, &APIError{Status: http.StatusBadRequest, Type: typeInvalidRequest,
			Message: fmt.Sprintf("chat is not available for this model: %v (use /v1/completions, or restart the server with --chat-template)", s.cfg.TemplateErr)})
		return
	}
	text, err := s.cfg.Template.RenderWith(req.Messages, true, req.TemplateArgs)
	if err != nil {
		writeError(w, invalid("messages", codeInvalidValue, "%v", err))
		return
	}
	// The template writes special tokens (BOS included) as text.
	ids := s.cfg.Tok.Encode(text, false, true)
	if s.cfg.Tok.AddBOS() && (len(ids) == 0 || ids[0] != s.cfg.Tok.BOS()) {
		ids = append([]int32{s.cfg.Tok.BOS()}, ids...)
	}
	s.generate(w, r, t0, req, ids, true, "")
}

func (s *Server) completions(w http.ResponseWriter, r *http.Request) {
	t0 := time.Now()
	body, e := s.readBody(w, r)
	if e != nil {
		writeError(w, e)
		return
	}
	req, e := decodeCompletion(body, s.cfg.Sampler)
	if e == nil {
		e = s.checkModel(req.Model)
	}
	if e != nil {
		writeError(w, e)
		return
	}
	ids := req.PromptIDs
	echo := req.Prompt
	if ids != nil {
		v := int32(s.cfg.Tok.VocabSize())
		for i, id := range ids {
			if id < 0 || id >= v {
				writeError(w, invalid("prompt", codeInvalidValue, "prompt token %d is %d, outside the vocabulary [0, %d)", i, id, v))
				return
			}
		}
		if req.Echo {
			echo = s.cfg.Tok.Decode(ids)
		}
	} else {
		// as llama.cpp: BOS as the vocabulary says, special tokens parsed
		ids = s.cfg.Tok.Encode(req.Prompt, true, true)
	}
	if !req.Echo {
		echo = ""
	}
	s.generate(w, r, t0, req, ids, false, echo)
}

// idSuffix is a random id part, like OpenAI's.
func idSuffix() string { return rand.Text() }

// generate runs a request's generation and answers it, streamed or whole.
// echo is prompt text to put before a completion.
func (s *Server) generate(w http.ResponseWriter, r *http.Request, t0 time.Time, req *request, ids []int32, isChat bool, echo string) {
	what := "messages"
	if !isChat {
		what = "prompt"
	}
	if len(ids) == 0 {
		writeError(w, invalid(what, codeInvalidValue, "the prompt is empty"))
		return
	}
	if len(ids) >= s.cfg.ContextTokens {
		writeError(w, contextExceeded(s.cfg.ContextTokens, len(ids), what))
		return
	}
	if !req.Seeded {
		req.Params.Sampler.Seed = mrand.Uint64()
	}
	m := s.metrics
	m.inFlight.Add(1)
	defer m.inFlight.Add(-1)

	g := &answer{s: s, w: w, req: req, isChat: isChat, what: what, created: time.Now().Unix(), t0: t0, prompt: len(ids)}
	if isChat {
		g.id = "chatcmpl-" + idSuffix()
	} else {
		g.id = "cmpl-" + idSuffix()
	}
	if req.Stream {
		g.sse = newSSE(w, s.cfg.WriteTimeout)
	}
	if req.Stream && echo != "" {
		g.pending = echo
	}
	res, err := s.cfg.Backend.Generate(r.Context(), ids, req.Params, g.emit)
	if err != nil {
		g.fail(r, err)
		return
	}
	m.promptTokens.Add(int64(res.PromptTokens))
	m.duration.observe(time.Since(t0).Seconds())
	if len(res.Tokens) > 1 {
		m.tps.observe(res.TokensPerSecond())
	}
	s.log.Info("generation", "id", g.id, "prompt_tokens", res.PromptTokens, "tokens", len(res.Tokens),
		"finish", res.Finish, "ttft", g.ttft.Round(time.Millisecond), "tokens_per_s", fmt.Sprintf("%.1f", res.TokensPerSecond()))
	if !req.Stream {
		g.whole(echo, res)
		return
	}
	if err := g.finish(res); err != nil {
		clientGone(w)
		m.disconnects.Add(1)
	}
}

func contextExceeded(ctx, n int, param string) *APIError {
	return invalid(param, codeContextExceeded,
		"This model's maximum context length is %d tokens. However, your %s resulted in %d tokens, leaving no room for a completion. Please reduce the length of the %s.",
		ctx, param, n, param)
}

// answer is the state of one response.
type answer struct {
	s        *Server
	w        http.ResponseWriter
	req      *request
	isChat   bool
	what     string // "messages" or "prompt", for errors
	id       string
	created  int64
	t0       time.Time
	ttft     time.Duration
	prompt   int
	tokens   int
	sse      *sse   // nil unless streaming
	pending  string // text to send before the first token's (echo)
	writeErr error  // a stream write failed: the client is gone
	once     sync.Once
}

// emit receives each token from the backend.
func (g *answer) emit(t engine.Token) error {
	g.once.Do(func() {
		g.ttft = time.Since(g.t0)
		g.s.metrics.ttft.observe(g.ttft.Seconds())
	})
	if t.ID >= 0 {
		g.tokens++
		g.s.metrics.completionTokens.Add(1)
	}
	if g.sse == nil {
		return nil
	}
	if !g.sse.started {
		if err := g.begin(); err != nil {
			g.writeErr = err
			return err
		}
	}
	if t.Text == "" {
		return nil
	}
	if err := g.sse.event(g.chunk(t.Text, nil)); err != nil {
		g.writeErr = err
		return err
	}
	return nil
}

// begin sends the stream's first event: the assistant role for chat, the
// echoed prompt for completions.
func (g *answer) begin() error {
	if g.isChat {
		return g.sse.event(g.chunkDelta(Delta{Role: "assistant", Content: new(string)}, nil))
	}
	if g.pending != "" {
		return g.sse.event(g.chunk(g.pending, nil))
	}
	g.sse.start()
	return nil
}

func (g *answer) usageField() json.RawMessage {
	if g.req.IncludeUsage {
		return jsonNull
	}
	return nil
}

func (g *answer) chunk(text string, finish *string) any {
	if g.isChat {
		d := Delta{}
		if finish == nil {
			d.Content = &text
		}
		return g.chunkDelta(d, finish)
	}
	return TextCompletion{ID: g.id, Object: objTextCompletion, Created: g.created, Model: g.s.cfg.ModelName,
		Choices: []TextChoice{{Text: text, FinishReason: finish}}, Usage: g.usageField()}
}

func (g *answer) chunkDelta(d Delta, finish *string) ChatChunk {
	return ChatChunk{ID: g.id, Object: objChatChunk, Created: g.created, Model: g.s.cfg.ModelName,
		Choices: []ChunkChoice{{Delta: d, FinishReason: finish}}, Usage: g.usageField()}
}

// finish ends a stream: the finish_reason event, the usage event when
// asked for, and [DONE].
func (g *answer) finish(res *engine.Result) error {
	if !g.sse.started {
		if err := g.begin(); err != nil {
			return err
		}
	}
	reason := res.Finish
	if err := g.sse.event(g.chunk("", &reason)); err != nil {
		return err
	}
	if g.req.IncludeUsage {
		u := rawUsage(usageOf(res.PromptTokens, len(res.Tokens)))
		var ev any
		if g.isChat {
			ev = ChatChunk{ID: g.id, Object: objChatChunk, Created: g.created, Model: g.s.cfg.ModelName, Choices: []ChunkChoice{}, Usage: u}
		} else {
			ev = TextCompletion{ID: g.id, Object: objTextCompletion, Created: g.created, Model: g.s.cfg.ModelName, Choices: []TextChoice{}, Usage: u}
		}
		if err := g.sse.event(ev); err != nil {
			return err
		}
	}
	return g.sse.done()
}

// whole answers a non-streaming request.
func (g *answer) whole(echo string, res *engine.Result) {
	u := usageOf(res.PromptTokens, len(res.Tokens))
	model := g.s.cfg.ModelName
	if g.isChat {
		writeJSON(g.w, http.StatusOK, ChatCompletion{ID: g.id, Object: objChatCompletion, Created: g.created, Model: model,
			Choices: []ChatChoice{{Message: ChatMessage{Role: "assistant", Content: res.Text}, FinishReason: res.Finish}}, Usage: u})
		return
	}
	reason := res.Finish
	writeJSON(g.w, http.StatusOK, TextCompletion{ID: g.id, Object: objTextCompletion, Created: g.created, Model: model,
		Choices: []TextChoice{{Text: echo + res.Text, FinishReason: &reason}}, Usage: rawUsage(u)})
}

// fail answers a generation error: as an HTTP error when nothing was sent
// yet, else as an error event in the stream (OpenAI's SDKs raise it).
func (g *answer) fail(r *http.Request, err error) {
	m := g.s.metrics
	if r.Context().Err() != nil || g.writeErr != nil {
		// the client went away (or stopped reading): nobody to answer
		clientGone(g.w)
		m.disconnects.Add(1)
		g.s.log.Info("client went away", "id", g.id, "tokens", g.tokens, "err", err)
		return
	}
	var e *APIError
	switch {
	case errors.Is(err, engine.ErrQueueFull):
		g.w.Header().Set("Retry-After", fmt.Sprint(retryAfterSeconds))
		st := g.s.cfg.Backend.Stats()
		e = &APIError{Status: http.StatusServiceUnavailable, Type: typeServer, Code: codeQueueFull,
			Message: fmt.Sprintf("The server is busy: all %d slots are generating and %d requests are waiting. Please retry after a short wait.", st.Slots, st.Queued)}
	case errors.Is(err, engine.ErrContextFull):
		e = contextExceeded(g.s.cfg.ContextTokens, g.prompt, g.what)
	case errors.Is(err, engine.ErrClosed):
		e = &APIError{Status: http.StatusServiceUnavailable, Type: typeServer, Message: "The server is shutting down."}
	default:
		g.s.log.Error("generation failed", "id", g.id, "err", err)
		e = &APIError{Status: http.StatusInternalServerError, Type: typeServer, Message: "generation failed: " + err.Error()}
	}
	if g.sse != nil && g.sse.started {
		g.sse.event(struct {
			Error *APIError `json:"error"`
		}{e})
		return
	}
	writeError(g.w, e)
}
