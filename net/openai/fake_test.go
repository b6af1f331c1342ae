package openai_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stokehq/stoke/engine"
)

// byteTok is a tokenizer with one token per byte (id = byte + 3), BOS 1.
type byteTok struct{}

func (byteTok) Encode(text string, addSpecial, _ bool) []int32 {
	var ids []int32
	if addSpecial {
		ids = append(ids, 1)
	}
	for i := 0; i < len(text); i++ {
		ids = append(ids, int32(text[i])+3)
	}
	return ids
}

func (byteTok) Decode(ids []int32) string {
	var b []byte
	for _, id := range ids {
		if id >= 3 {
			b = append(b, byte(id-3))
		}
	}
	return string(b)
}

func (byteTok) BOS() int32     { return 1 }
func (byteTok) AddBOS() bool   { return true }
func (byteTok) VocabSize() int { return 259 }

var words = []string{"alpha ", "beta ", "gamma ", "delta ", "", "epsilon ", "zeta ", "eta "}

// fakeBackend generates words chosen by the seed and the prompt; it
// honours MaxTokens (default 8), stop strings (crudely: it ends when the
// text so far contains one) and cancellation.
type fakeBackend struct {
	ctx      int
	delay    time.Duration // per token
	full     bool          // answer ErrQueueFull
	active   atomic.Int64
	cancels  atomic.Int64
	started  chan struct{} // receives when a generation starts (if not nil)
	mu       sync.Mutex
	lastSeen engine.GenerateParams
	lastIDs  []int32
	sparse   [2]int64 // SparseActive, SparsePossible to report
}

func (f *fakeBackend) Generate(ctx context.Context, prompt []int32, p engine.GenerateParams, emit func(engine.Token) error) (*engine.Result, error) {
	if f.full {
		return nil, engine.ErrQueueFull
	}
	if len(prompt) >= f.ctx {
		return nil, fmt.Errorf("%w: prompt too long", engine.ErrContextFull)
	}
	f.mu.Lock()
	f.lastSeen, f.lastIDs = p, prompt
	f.mu.Unlock()
	f.active.Add(1)
	defer f.active.Add(-1)
	if f.started != nil {
		f.started <- struct{}{}
	}
	n := p.MaxTokens
	if n <= 0 {
		n = 8
	}
	var sum uint64
	for _, id := range prompt {
		sum += uint64(id)
	}
	res := &engine.Result{PromptTokens: len(prompt), Finish: engine.FinishLength}
	var text strings.Builder
	for i := range n {
		if f.delay > 0 {
			select {
			case <-ctx.Done():
				f.cancels.Add(1)
				return nil, ctx.Err()
			case <-time.After(f.delay):
			}
		}
		if err := ctx.Err(); err != nil {
			f.cancels.Add(1)
			return nil, err
		}
		id := int32((p.Sampler.Seed + sum + uint64(i)) % uint64(len(words)))
		w := words[id]
		res.Tokens = append(res.Tokens, id+3)
		text.WriteString(w)
		stop := false
		for _, s := range p.Stop {
			if k := strings.Index(text.String(), s); k >= 0 {
				t := text.String()[:k]
				text.Reset()
				text.WriteString(t)
				w = ""
				stop = true
			}
		}
		if err := emit(engine.Token{ID: id + 3, Text: w}); err != nil {
			return nil, err
		}
		if stop {
			res.Finish = engine.FinishStop
			break
		}
	}
	if err := emit(engine.Token{ID: -1, Text: "."}); err != nil {
		return nil, err
	}
	text.WriteString(".")
	res.Text = text.String()
	return res, nil
}

func (f *fakeBackend) Stats() engine.SchedulerStats {
	return engine.SchedulerStats{Slots: 4, Active: int(f.active.Load()), KVTokens: 4 * f.ctx, Cancelled: f.cancels.Load(),
		SparseActive: f.sparse[0], SparsePossible: f.sparse[1]}
}

// readSSE parses a text/event-stream body: events separated by blank
// lines, "data:" lines joined by newlines, comments and other fields
// ignored. It checks the framing OpenAI uses and returns the data of each
// event.
func readSSE(t testing.TB, r io.Reader) []string {
	t.Helper()
	var out []string
	var data []string
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<16), 1<<24)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if data != nil {
				out = append(out, strings.Join(data, "\n"))
				data = nil
			}
		case strings.HasPrefix(line, ":"):
		case strings.HasPrefix(line, "data:"):
			data = append(data, strings.TrimPrefix(strings.TrimPrefix(line, "data:"), " "))
		default:
			t.Errorf("unexpected SSE line %q", line)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("reading the stream: %v", err)
	}
	if data != nil {
		t.Errorf("stream ended inside an event: %q", data)
	}
	return out
}

// post sends a JSON body and returns the response.
func post(t testing.TB, url, body string) *http.Response {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// decodeJSON reads resp's body into v and closes it.
func decodeJSON(t testing.TB, resp *http.Response, v any) {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("decoding %s: %v", b, err)
	}
}
