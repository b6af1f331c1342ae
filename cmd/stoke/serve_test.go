package main

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

// TestServeSparse: stoke serve --sparse answers a greedy completion with
// the text stoke run --sparse generates (one sequence decodes alone, so
// the sparse FFN runs, as /metrics counts), with the file's predictor
// re-encoded as asked, and says so in its start-up line; --predictor-type
// without --sparse is a usage error.
func TestServeSparse(t *testing.T) {
	model, _ := benchModel(t)
	const prompt = "The fox ran"
	out, e, code := stoke(t, "run", "-m", model, "--sparse", "--predictor-type", "q8_0", "-p", prompt, "-n", "12", "--temp", "0", "--threads", "1", "--json")
	if code != 0 {
		t.Fatalf("run --sparse: exit %d: %s%s", code, out, e)
	}
	var want struct {
		Text string `json:"text"`
	}
	if err := json.Unmarshal([]byte(out), &want); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}

	addr := freePort(t, "tcp")
	host, port, _ := net.SplitHostPort(addr)
	log := background(t, "serve", "-m", model, "--host", host, "--port", port, "--sparse", "--predictor-type", "q8_0", "--threads", "1", "--parallel", "2")
	waitUntil(t, "the server", func() bool { return strings.Contains(log.String(), "model loaded") })
	if !strings.Contains(log.String(), `sparse_ffn="the file's PowerInfer predictor in Q8_0"`) {
		t.Errorf("start-up line:\n%s", log.String())
	}
	body := `{"prompt": "` + prompt + `", "max_tokens": 12, "temperature": 0}`
	resp, err := http.Post("http://"+addr+"/v1/completions", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got struct {
		Choices []struct {
			Text string `json:"text"`
		} `json:"choices"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil || resp.StatusCode != 200 || len(got.Choices) != 1 {
		t.Fatalf("completion: status %d, %+v, %v", resp.StatusCode, got, err)
	}
	if got.Choices[0].Text != want.Text {
		t.Errorf("serve --sparse completes %q, run --sparse %q", got.Choices[0].Text, want.Text)
	}

	// the sparse FFN ran: /metrics counts the neurons it computed, a
	// planted model's few
	mr, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer mr.Body.Close()
	metrics, err := io.ReadAll(mr.Body)
	if err != nil {
		t.Fatal(err)
	}
	var computed, possible float64
	for _, line := range strings.Split(string(metrics), "\n") {
		if v, ok := strings.CutPrefix(line, "stoke_sparse_ffn_neurons_computed_total "); ok {
			computed, _ = strconv.ParseFloat(v, 64)
		}
		if v, ok := strings.CutPrefix(line, "stoke_sparse_ffn_neurons_total "); ok {
			possible, _ = strconv.ParseFloat(v, 64)
		}
	}
	if !(possible > 0) || !(computed > 0) || computed/possible > 0.5 {
		t.Errorf("sparse FFN counters: %v computed of %v\n%s", computed, possible, metrics)
	}

	if _, e, code := stoke(t, "serve", "-m", model, "--predictor-type", "q8_0"); code != 2 || !strings.Contains(e, "--sparse") {
		t.Errorf("--predictor-type without --sparse: exit %d, %s", code, e)
	}
}

// TestRunDevicePredictor: stoke run --sparse with a device (the capped
// CPU standing in) puts the file's predictor there and computes it
// there; a predictor re-encoded at load runs on the host, and the plan
// then leaves the file's predictor off the device.
func TestRunDevicePredictor(t *testing.T) {
	model, _ := benchModel(t)
	args := []string{"run", "-m", model, "--sparse", "--vram", "64MiB", "--ctx", "64", "--device", "cpu-capped", "-p", "The fox ran", "-n", "8", "--temp", "0", "--threads", "1"}
	out, e, code := stoke(t, args...)
	if code != 0 || !strings.Contains(e, "attention of 2/2 layers, predictor of 2,") || !strings.Contains(out, "layer predictions on the device") {
		t.Fatalf("run --sparse on a device: exit %d:\n%s%s", code, out, e)
	}
	out, e, code = stoke(t, append(args, "--predictor-type", "q8_0")...)
	if code != 0 || !strings.Contains(e, "predictor of 0,") || strings.Contains(out, "layer predictions on the device") {
		t.Fatalf("run --sparse --predictor-type q8_0 on a device: exit %d:\n%s%s", code, out, e)
	}
	out, e, code = stoke(t, "run", "-m", model, "--vram", "64MiB", "--ctx", "64", "--device", "cpu-capped", "-p", "The fox ran", "-n", "4", "--temp", "0", "--threads", "1")
	if code != 0 || !strings.Contains(e, "predictor of 0,") {
		t.Fatalf("dense run on a device: exit %d:\n%s%s", code, out, e)
	}
}
