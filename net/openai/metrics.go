package openai

import (
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// statusClientClosed is recorded for a request whose client went away
// before the answer was complete (nginx's convention; never sent).
const statusClientClosed = 499

// metrics are the server's counters, written as Prometheus text by hand.
type metrics struct {
	mu       sync.Mutex
	requests map[reqKey]int64

	inFlight         atomic.Int64
	promptTokens     atomic.Int64
	completionTokens atomic.Int64
	disconnects      atomic.Int64

	ttft     histogram // seconds from request to first token
	duration histogram // seconds from request to the end of the answer
	tps      histogram // decode tokens/s of each request
}

type reqKey struct {
	endpoint string
	code     int
}

func newMetrics() *metrics {
	return &metrics{
		requests: map[reqKey]int64{},
		ttft:     newHistogram(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
		duration: newHistogram(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600),
		tps:      newHistogram(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000),
	}
}

func (m *metrics) request(endpoint string, code int) {
	m.mu.Lock()
	m.requests[reqKey{endpoint, code}]++
	m.mu.Unlock()
}

// histogram is a Prometheus histogram: cumulative counts per upper bound.
type histogram struct {
	mu     sync.Mutex
	bounds []float64
	counts []uint64 // per bucket, not cumulative; last is +Inf
	sum    float64
	n      uint64
}

func newHistogram(bounds ...float64) histogram {
	return histogram{bounds: bounds, counts: make([]uint64, len(bounds)+1)}
}

func (h *histogram) observe(v float64) {
	if math.IsNaN(v) {
		return
	}
	i, _ := slices.BinarySearch(h.bounds, v)
	h.mu.Lock()
	h.counts[i]++
	h.sum += v
	h.n++
	h.mu.Unlock()
}

func (h *histogram) write(w io.Writer, name, help string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name)
	var cum uint64
	for i, b := range h.bounds {
		cum += h.counts[i]
		fmt.Fprintf(w, "%s_bucket{le=\"%s\"} %d\n", name, formatFloat(b), cum)
	}
	fmt.Fprintf(w, "%s_bucket{le=\"+Inf\"} %d\n%s_sum %s\n%s_count %d\n", name, h.n, name, formatFloat(h.sum), name, h.n)
}

func formatFloat(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

func writeMetric(w io.Writer, name, typ, help string, v float64) {
	fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n%s %s\n", name, help, name, typ, name, formatFloat(v))
}

// serveMetrics writes the Prometheus text exposition format (0.0.4).
func (s *Server) serveMetrics(w http.ResponseWriter, _ *http.Request) {
	var b strings.Builder
	m := s.metrics

	m.mu.Lock()
	keys := make([]reqKey, 0, len(m.requests))
	for k := range m.requests {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b reqKey) int {
		if c := strings.Compare(a.endpoint, b.endpoint); c != 0 {
			return c
		}
		return a.code - b.code
	})
	b.WriteString("# HELP stoke_requests_total HTTP requests by endpoint and status code (499: the client went away).\n# TYPE stoke_requests_total counter\n")
	for _, k := range keys {
		fmt.Fprintf(&b, "stoke_requests_total{endpoint=%q,code=\"%d\"} %d\n", k.endpoint, k.code, m.requests[k])
	}
	m.mu.Unlock()

	writeMetric(&b, "stoke_requests_in_flight", "gauge", "Requests being answered.", float64(m.inFlight.Load()))
	writeMetric(&b, "stoke_client_disconnects_total", "counter", "Generations stopped because the client went away.", float64(m.disconnects.Load()))
	writeMetric(&b, "stoke_prompt_tokens_total", "counter", "Prompt tokens of answered requests.", float64(m.promptTokens.Load()))
	writeMetric(&b, "stoke_completion_tokens_total", "counter", "Tokens generated for requests, including those cut short.", float64(m.completionTokens.Load()))
	m.ttft.write(&b, "stoke_time_to_first_token_seconds", "Time from a request's arrival to its first generated token.")
	m.tps.write(&b, "stoke_decode_tokens_per_second", "Decode speed of each request (tokens after the first).")
	m.duration.write(&b, "stoke_request_duration_seconds", "Time from a generation request's arrival to the end of its answer.")

	st := s.cfg.Backend.Stats()
	writeMetric(&b, "stoke_slots", "gauge", "Sequence slots decoded together.", float64(st.Slots))
	writeMetric(&b, "stoke_slots_active", "gauge", "Slots running a generation.", float64(st.Active))
	writeMetric(&b, "stoke_queue_depth", "gauge", "Requests waiting for a slot.", float64(st.Queued))
	writeMetric(&b, "stoke_kv_cache_tokens", "gauge", "KV cache capacity of all slots, in tokens.", float64(st.KVTokens))
	writeMetric(&b, "stoke_kv_cache_used_tokens", "gauge", "Tokens held in the slots' KV caches.", float64(st.KVUsedTokens))
	ratio := 0.0
	if st.KVTokens > 0 {
		ratio = float64(st.KVUsedTokens) / float64(st.KVTokens)
	}
	writeMetric(&b, "stoke_kv_cache_usage_ratio", "gauge", "Used fraction of the KV cache.", ratio)
	writeMetric(&b, "stoke_scheduler_prompt_tokens_total", "counter", "Prompt tokens admitted by the scheduler.", float64(st.PromptTokens))
	writeMetric(&b, "stoke_scheduler_generated_tokens_total", "counter", "Tokens sampled by the scheduler; its rate is the aggregate decode speed.", float64(st.GenTokens))
	writeMetric(&b, "stoke_scheduler_steps_total", "counter", "Forward passes run by the scheduler.", float64(st.Steps))
	writeMetric(&b, "stoke_scheduler_cancelled_total", "counter", "Sequences the scheduler dropped because their requester went away.", float64(st.Cancelled))
	if st.SparsePossible > 0 {
		writeMetric(&b, "stoke_sparse_ffn_neurons_total", "counter", "FFN neurons the sparse FFN could have computed (serve --sparse: every decode step).", float64(st.SparsePossible))
		writeMetric(&b, "stoke_sparse_ffn_neurons_computed_total", "counter", "FFN neurons the sparse FFN computed; over stoke_sparse_ffn_neurons_total, the share of the FFN read.", float64(st.SparseActive))
	}
	writeMetric(&b, "stoke_uptime_seconds", "gauge", "Seconds since the server started.", time.Since(s.start).Seconds())

	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	io.WriteString(w, b.String())
}
