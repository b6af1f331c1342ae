package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer safe for a command writing while the test
// reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func freePort(t *testing.T, network string) string {
	t.Helper()
	if network == "udp" {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.LocalAddr().String()
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// background runs a stoke command until the test ends.
func background(t *testing.T, args ...string) *syncBuffer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var out syncBuffer
	done := make(chan int, 1)
	go func() { done <- mainErr(ctx, args, &out, &out) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Errorf("stoke %s did not stop", args[0])
		}
	})
	return &out
}

// TestNetworkCLI: on a closed network a node's key is refused until the
// operator admits it; the ledger is locked while a coordinator runs.
func TestNetworkCLI(t *testing.T) {
	dir := t.TempDir()
	model := filepath.Join(dir, "m.gguf")
	if _, e, code := stoke(t, "synth", "--out", model, "--params", "2M", "--dtype", "q8_0", "--seed", "4"); code != 0 {
		t.Fatalf("synth: %s", e)
	}
	cdata, ndata := filepath.Join(dir, "coord"), filepath.Join(dir, "node")
	quicAddr, httpAddr := freePort(t, "udp"), freePort(t, "tcp")
	startCoord := func() (*syncBuffer, func()) {
		ctx, cancel := context.WithCancel(context.Background())
		var log syncBuffer
		done := make(chan int, 1)
		go func() {
			done <- mainErr(ctx, []string{"coordinator", "--listen", quicAddr, "--http", httpAddr, "--data", cdata, "-m", model,
				"--verify-p", "1", "--heartbeat", "200ms", "--threads", "1"}, &log, &log)
		}()
		waitUntil(t, "the coordinator", func() bool { return strings.Contains(log.String(), "listening") })
		return &log, func() {
			cancel()
			if c := <-done; c != 0 {
				t.Errorf("coordinator exit %d:\n%s", c, log.String())
			}
		}
	}
	coordLog, stop := startCoord()
	nodeLog := background(t, "node", "--coordinator", quicAddr, "--data", ndata, "-m", model, "--vram", "0",
		"--parallel", "2", "--threads", "1", "--name", "cli-node")
	keyRE := regexp.MustCompile(`coordinator admit --data DIR ([0-9a-f]{64})`)
	waitUntil(t, "the node's key", func() bool { return keyRE.MatchString(nodeLog.String()) })
	key := keyRE.FindStringSubmatch(nodeLog.String())[1]
	waitUntil(t, "the refusal", func() bool { return strings.Contains(nodeLog.String(), "not-admitted") })
	if strings.Contains(coordLog.String(), "node joined") {
		t.Fatal("an unadmitted node joined")
	}

	// the running coordinator holds the ledger
	if _, e, code := stoke(t, "coordinator", "admit", "--data", cdata, "--stake", "25", key); code == 0 || !strings.Contains(e, "locked") {
		t.Fatalf("admit while the coordinator runs: exit %d, %s", code, e)
	}
	if _, e, code := stoke(t, "coordinator", "--listen", freePort(t, "udp"), "--http", freePort(t, "tcp"), "--data", cdata, "-m", model); code == 0 || !strings.Contains(e, "locked") {
		t.Fatalf("second coordinator: exit %d, %s", code, e)
	}

	// stop, admit, start: the node (still redialling) joins
	stop()
	if out, e, code := stoke(t, "coordinator", "admit", "--data", cdata, "--stake", "25", "--name", "cli-node", key); code != 0 || !strings.Contains(out, "admitted") {
		t.Fatalf("admit: exit %d, %s%s", code, out, e)
	}
	coordLog, stop = startCoord()
	defer stop()
	waitUntil(t, "the admitted node to join", func() bool { return strings.Contains(coordLog.String(), "node joined") })
}

// TestNetworkCLIServe: an open coordinator and a node answer a
// completion through the gateway, and the ledger records it.
func TestNetworkCLIServe(t *testing.T) {
	dir := t.TempDir()
	model := filepath.Join(dir, "m.gguf")
	if _, e, code := stoke(t, "synth", "--out", model, "--params", "2M", "--dtype", "q8_0", "--seed", "4"); code != 0 {
		t.Fatalf("synth: %s", e)
	}
	cdata, ndata := filepath.Join(dir, "coord"), filepath.Join(dir, "node")
	quicAddr, httpAddr := freePort(t, "udp"), freePort(t, "tcp")
	run := func() {
		ctx, cancel := context.WithCancel(context.Background())
		var clog, nlog syncBuffer
		cdone, ndone := make(chan int, 1), make(chan int, 1)
		go func() {
			cdone <- mainErr(ctx, []string{"coordinator", "--listen", quicAddr, "--http", httpAddr, "--data", cdata, "-m", model,
				"--open", "--open-stake", "5", "--verify-p", "1", "--heartbeat", "200ms", "--threads", "1"}, &clog, &clog)
		}()
		waitUntil(t, "the coordinator", func() bool { return strings.Contains(clog.String(), "listening") })
		go func() {
			ndone <- mainErr(ctx, []string{"node", "--coordinator", quicAddr, "--data", ndata, "-m", model, "--vram", "0",
				"--parallel", "2", "--threads", "1"}, &nlog, &nlog)
		}()
		waitUntil(t, "the node to join", func() bool { return strings.Contains(clog.String(), "node joined") })
		body := `{"prompt":"Hello network","max_tokens":8,"temperature":0}`
		resp, err := http.Post("http://"+httpAddr+"/v1/completions", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(b), `"text_completion"`) {
			t.Fatalf("completion: %d %s\ncoordinator:\n%s\nnode:\n%s", resp.StatusCode, b, clog.String(), nlog.String())
		}
		waitUntil(t, "the spot check", func() bool { return strings.Contains(clog.String(), "spot check") })
		cancel()
		if c := <-ndone; c != 0 {
			t.Fatalf("node exit %d:\n%s", c, nlog.String())
		}
		if c := <-cdone; c != 0 {
			t.Fatalf("coordinator exit %d:\n%s", c, clog.String())
		}
		if !strings.Contains(nlog.String(), "draining") {
			t.Errorf("the node did not drain:\n%s", nlog.String())
		}
	}
	run()
	out, e, code := stoke(t, "coordinator", "ledger", "--data", cdata)
	if code != 0 || !strings.Contains(out, "REPUTATION") || !strings.Contains(out, "true") {
		t.Fatalf("ledger: exit %d\n%s%s", code, out, e)
	}
	fields := strings.Fields(strings.Split(strings.TrimSpace(out), "\n")[1])
	// KEY NAME ADMITTED STAKE BALANCE JOBS LOST CHECKS FAILED ...
	if fields[3] != "5" || fields[5] != "1" || fields[7] != "1" || fields[8] != "0" {
		t.Fatalf("ledger row %v", fields)
	}
	// the same node key and coordinator key after a restart: the node's
	// pin of the coordinator holds and the ledger carries on
	run()
	out, _, _ = stoke(t, "coordinator", "ledger", "--data", cdata)
	if f := strings.Fields(strings.Split(strings.TrimSpace(out), "\n")[1]); f[5] != "2" {
		t.Fatalf("after a restart: %v", f)
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestNetworkCLIErrors(t *testing.T) {
	for _, args := range [][]string{
		{"node"},
		{"node", "--coordinator", "x:1"},
		{"node", "--coordinator", "x:1", "--data", "d", "--open", "--coordinator-key", "ab"},
		{"coordinator"},
		{"coordinator", "--data", "d", "--verify-p", "2"},
		{"coordinator", "--data", "d", "--verify-p", "auto"},
		{"coordinator", "admit", "--data", "d"},
		{"coordinator", "admit", "--data", "d", "nothex"},
		{"coordinator", "payoff"},
	} {
		if _, e, code := stoke(t, args...); code != 2 {
			t.Errorf("%v: exit %d, want 2 (%s)", args, code, e)
		}
	}
}

func TestPayoffCLI(t *testing.T) {
	out, e, code := stoke(t, "coordinator", "payoff", "--saving", "2", "--reward", "1", "--penalty", "99", "--collusion", "0.1", "--verify-p", "0.05")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, e)
	}
	for _, want := range []string{
		fmt.Sprintf("= %.6g", 2/(0.9*100)),
		"expected gain per job -2.5",
		"quarantined after 2 failed checks",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("payoff output lacks %q:\n%s", want, out)
		}
	}
}
