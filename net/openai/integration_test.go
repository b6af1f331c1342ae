package openai_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stokehq/stoke/engine"
	"github.com/stokehq/stoke/engine/chat"
	"github.com/stokehq/stoke/kernels/cpu"
	"github.com/stokehq/stoke/models/dtype"
	"github.com/stokehq/stoke/models/synth"
	"github.com/stokehq/stoke/net/openai"
)

var (
	synthOnce sync.Once
	synthDir  string
	synthErr  error
)

// synthModel writes a small synthetic model once per test binary.
func synthModel(t testing.TB) string {
	t.Helper()
	synthOnce.Do(func() {
		if synthDir, synthErr = os.MkdirTemp("", "stoke-openai-test"); synthErr != nil {
			return
		}
		synthErr = synth.Write(filepath.Join(synthDir, "m.gguf"), synth.Config{Arch: "llama", Params: 3e6, Type: dtype.Q4_0, Seed: 1})
	})
	if synthErr != nil {
		t.Fatal(synthErr)
	}
	return filepath.Join(synthDir, "m.gguf")
}

func TestMain(m *testing.M) {
	code := m.Run()
	if synthDir != "" {
		os.RemoveAll(synthDir)
	}
	os.Exit(code)
}

// realServer serves the synthetic model with the real scheduler, the
// model loaded as stoke serve loads it on the CPU: read into memory, its
// Q4_0 matrices packed where that pays.
func realServer(t testing.TB, o engine.SchedulerOptions) (string, *engine.Scheduler) {
	t.Helper()
	m, err := engine.LoadWith(synthModel(t), engine.LoadOptions{NoMmap: true, PackQ4: true})
	if err != nil {
		t.Fatal(err)
	}
	if cpu.Q4x16Pays() && m.PackedMatrices() == 0 {
		t.Fatal("the model was not packed")
	}
	t.Cleanup(func() { m.Close() })
	sched, err := engine.NewScheduler(m, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sched.Close)
	tmpl, err := chat.FromGGUF(m.File, modelName, "llama2")
	if err != nil {
		t.Fatal(err)
	}
	s, err := openai.NewServer(openai.Config{ModelName: modelName, Backend: sched, Tok: m.Tok, ContextTokens: sched.Context(), Template: tmpl, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close) // runs before sched.Close: handlers end first
	return ts.URL, sched
}

func wholeChat(t testing.TB, url, body string) openai.ChatCompletion {
	t.Helper()
	resp := post(t, url+"/v1/chat/completions", body)
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	var c openai.ChatCompletion
	decodeJSON(t, resp, &c)
	return c
}

func userBody(content, extra string) string {
	b, _ := json.Marshal(content)
	return `{"model":"` + modelName + `","messages":[{"role":"user","content":` + string(b) + `}],` + extra + `}`
}

// TestRealStreamEqualsWhole: for the same seed, sampled text streamed
// equals text answered whole, on both endpoints.
func TestRealStreamEqualsWhole(t *testing.T) {
	url, _ := realServer(t, engine.SchedulerOptions{Parallel: 2, Context: 256, Threads: 1})
	for _, seed := range []int{1, 2} {
		extra := fmt.Sprintf(`"seed":%d,"temperature":0.9,"max_tokens":24,"ignore_eos":true`, seed)
		whole := wholeChat(t, url, userBody("Tell me a story.", extra))
		text, chunks := streamChat(t, url, userBody("Tell me a story.", extra+`,"stream":true,"stream_options":{"include_usage":true}`))
		if text != whole.Choices[0].Message.Content || text == "" {
			t.Errorf("seed %d: streamed %q, whole %q", seed, text, whole.Choices[0].Message.Content)
		}
		var u openai.Usage
		json.Unmarshal(chunks[len(chunks)-1].Usage, &u)
		if u != *whole.Usage || u.CompletionTokens != 24 {
			t.Errorf("seed %d: streamed usage %+v, whole %+v", seed, u, whole.Usage)
		}

		body := fmt.Sprintf(`{"prompt":"Once upon a time","seed":%d,"max_tokens":20,"ignore_eos":true}`, seed)
		var c openai.TextCompletion
		decodeJSON(t, post(t, url+"/v1/completions", body), &c)
		resp := post(t, url+"/v1/completions", strings.Replace(body, "{", `{"stream":true,`, 1))
		evs := readSSE(t, resp.Body)
		resp.Body.Close()
		var sb strings.Builder
		for _, ev := range evs[:len(evs)-1] {
			var tc openai.TextCompletion
			json.Unmarshal([]byte(ev), &tc)
			sb.WriteString(tc.Choices[0].Text)
		}
		if sb.String() != c.Choices[0].Text || evs[len(evs)-1] != "[DONE]" {
			t.Errorf("completions, seed %d: streamed %q, whole %q", seed, sb.String(), c.Choices[0].Text)
		}
	}
}

// TestRealConcurrentClients: 64 concurrent clients (half streaming) each
// get exactly the greedy completion they get alone.
func TestRealConcurrentClients(t *testing.T) {
	url, sched := realServer(t, engine.SchedulerOptions{Parallel: 8, Context: 256, Queue: 64, Threads: 2})
	const clients = 64
	body := func(i int, stream bool) string {
		return userBody(fmt.Sprintf("Client %d asks: %s", i, strings.Repeat("why? ", i%4+1)),
			fmt.Sprintf(`"temperature":0,"max_tokens":%d,"ignore_eos":true,"stream":%v`, 8+i%5, stream))
	}
	want := make([]string, clients)
	for i := range clients {
		want[i] = wholeChat(t, url, body(i, false)).Choices[0].Message.Content
	}
	got := make([]string, clients)
	var wg sync.WaitGroup
	for i := range clients {
		wg.Go(func() {
			if i%2 == 1 {
				got[i], _ = streamChat(t, url, body(i, true))
				return
			}
			got[i] = wholeChat(t, url, body(i, false)).Choices[0].Message.Content
		})
	}
	wg.Wait()
	distinct := map[string]bool{}
	for i := range clients {
		if got[i] != want[i] {
			t.Errorf("client %d: concurrent %q, alone %q", i, got[i], want[i])
		}
		distinct[want[i]] = true
	}
	if len(distinct) < clients/2 {
		t.Errorf("only %d distinct completions for %d prompts: the test cannot tell clients apart", len(distinct), clients)
	}
	if st := sched.Stats(); st.Active != 0 || st.Queued != 0 {
		t.Errorf("after all clients: %+v", st)
	}
}

// TestRealStop cuts a greedy completion at a stop string taken from it.
func TestRealStop(t *testing.T) {
	url, _ := realServer(t, engine.SchedulerOptions{Parallel: 2, Context: 256, Threads: 1})
	extra := `"temperature":0,"max_tokens":30,"ignore_eos":true`
	full := wholeChat(t, url, userBody("Say something.", extra)).Choices[0].Message.Content
	if len(full) < 12 {
		t.Fatalf("completion %q too short for the test", full)
	}
	// a stop string from the middle, starting at a rune boundary
	i := len(full) / 2
	for i < len(full) && (full[i]&0xc0) == 0x80 {
		i++
	}
	stop := full[i:min(i+3, len(full))]
	for len(stop) > 0 && (stop[len(stop)-1]&0xc0) == 0xc0 {
		stop = stop[:len(stop)-1]
	}
	wantText := full[:strings.Index(full, stop)]
	sb, _ := json.Marshal(stop)
	c := wholeChat(t, url, userBody("Say something.", extra+`,"stop":[`+string(sb)+`]`))
	if c.Choices[0].Message.Content != wantText || c.Choices[0].FinishReason != "stop" {
		t.Errorf("stop %q: %q (%s), want %q", stop, c.Choices[0].Message.Content, c.Choices[0].FinishReason, wantText)
	}
	text, chunks := streamChat(t, url, userBody("Say something.", extra+`,"stream":true,"stop":`+string(sb)))
	if text != wantText || *chunks[len(chunks)-1].Choices[0].FinishReason != "stop" {
		t.Errorf("streamed with stop %q: %q, want %q", stop, text, wantText)
	}
}

// TestRealDisconnect: a streaming client that goes away frees its slot,
// and the metrics show it.
func TestRealDisconnect(t *testing.T) {
	url, sched := realServer(t, engine.SchedulerOptions{Parallel: 1, Context: 4096, Threads: 1})
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "POST", url+"/v1/chat/completions",
		strings.NewReader(userBody("Go on forever.", `"max_tokens":4000,"ignore_eos":true,"stream":true`)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(resp.Body)
	for range 3 { // the role event and some tokens
		if _, err := br.ReadString('\n'); err != nil {
			t.Fatal(err)
		}
	}
	if sched.Stats().Active != 1 {
		t.Fatalf("stats while streaming: %+v", sched.Stats())
	}
	cancel()
	resp.Body.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		m := getMetrics(t, url)
		if m["stoke_slots_active"] == 0 && m["stoke_scheduler_cancelled_total"] == 1 && m["stoke_client_disconnects_total"] == 1 &&
			m[`stoke_requests_total{endpoint="/v1/chat/completions",code="499"}`] == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("metrics do not show the freed slot: %v", m)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// the slot serves the next request
	c := wholeChat(t, url, userBody("Next.", `"max_tokens":3,"ignore_eos":true`))
	if c.Usage.CompletionTokens != 3 {
		t.Errorf("next request: %+v", c)
	}
}

func TestRealContextExceeded(t *testing.T) {
	url, _ := realServer(t, engine.SchedulerOptions{Parallel: 1, Context: 64, Threads: 1})
	resp := post(t, url+"/v1/chat/completions", userBody(strings.Repeat("many words here ", 40), `"max_tokens":3`))
	var e apiErr
	decodeJSON(t, resp, &e)
	if resp.StatusCode != 400 || e.Error.Code != "context_length_exceeded" || !strings.Contains(e.Error.Message, "64 tokens") {
		t.Errorf("%d %+v", resp.StatusCode, e)
	}
	// a prompt that fits with max_tokens past the context ends with "length"
	// (the last token sampled needs no room in the cache)
	c := wholeChat(t, url, userBody("Hi", `"max_tokens":1000,"ignore_eos":true`))
	if c.Choices[0].FinishReason != "length" || c.Usage.TotalTokens < 64 || c.Usage.TotalTokens > 65 {
		t.Errorf("generation to the end of the context: %+v %+v", c.Choices[0], c.Usage)
	}
}
