package wire_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/stokehq/stoke/engine"
	"github.com/stokehq/stoke/net/wire"
)

// samples are one filled-in message of every type (also the fuzz seeds).
func samples() []wire.Message {
	sha := [32]byte{1, 2, 3, 31: 0xff}
	params := wire.Params{MaxTokens: 64, Stop: []string{"\n\n", "</s>"}, IgnoreEOS: true,
		Sampler: wire.Sampler{Temperature: 0.8, TopK: 40, TopP: 0.95, MinP: 0.05, RepeatPenalty: 1.1, RepeatLastN: 64,
			PresencePenalty: 0.5, FrequencyPenalty: -0.25, Seed: math.MaxUint64}}
	return []wire.Message{
		&wire.Hello{Version: wire.Version, Name: "node-a", Hardware: wire.Hardware{GPU: "GTX 1060", VRAM: 6 << 30, CPU: "Ryzen 5", Cores: 12, RAM: 32 << 30},
			Models: []wire.ModelInfo{{SHA256: sha, Arch: "llama", Name: "stories260K", Quant: "F32", Params: 260_000, Context: 512}},
			Slots:  4, TokensPerSec: 123.5, PromptTokensPerSec: 900, Verifier: true},
		&wire.Hello{},
		&wire.Welcome{Version: wire.Version, HeartbeatMillis: 2000, Coordinator: "coord"},
		&wire.Heartbeat{Seq: 7, Active: 2, Queued: 1, Draining: true, TokensPerSec: 88},
		&wire.JobRequest{ID: 1 << 40, Model: sha, Prompt: []int32{1, 2, 300, wire.MaxTokenID}, Params: params, Fingerprint: true},
		&wire.JobRequest{},
		&wire.Tokens{IDs: []int32{5, 6, 70000}},
		&wire.JobEnd{Finish: engine.FinishStop, PromptTokens: 4, Tokens: 3, PromptMicros: 1234, DecodeMicros: 99999, Proof: []byte{9, 8, 7}},
		&wire.VerifyRequest{ID: 3, Model: sha, Prompt: []int32{1, 2}, Output: []int32{3}, Params: params, Proof: []byte("proof")},
		&wire.VerifyResult{ID: 3, OK: false, Reason: "index overlap 12/128", Micros: 5000},
		&wire.Error{Code: wire.CodeDraining, Message: "draining"},
	}
}

func TestRoundTrip(t *testing.T) {
	var stream bytes.Buffer
	for _, m := range samples() {
		b, err := wire.Encode(m)
		if err != nil {
			t.Fatalf("%s: %v", m.Type(), err)
		}
		if int(binary.BigEndian.Uint32(b[1:])) != len(b)-wire.HeaderSize {
			t.Fatalf("%s: header length %d, payload %d", m.Type(), binary.BigEndian.Uint32(b[1:]), len(b)-wire.HeaderSize)
		}
		got, n, err := wire.DecodeFrame(b)
		if err != nil || n != len(b) {
			t.Fatalf("%s: decode: %v (%d of %d bytes)", m.Type(), err, n, len(b))
		}
		if !reflect.DeepEqual(got, m) {
			t.Fatalf("%s: round trip\n got %+v\nwant %+v", m.Type(), got, m)
		}
		if err := wire.Write(&stream, m); err != nil {
			t.Fatal(err)
		}
	}
	for _, want := range samples() {
		got, err := wire.Read(&stream)
		if err != nil {
			t.Fatalf("%s: %v", want.Type(), err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%s: read back %+v", want.Type(), got)
		}
	}
	if _, err := wire.Read(&stream); err != io.EOF {
		t.Fatalf("after the last frame: %v, want io.EOF", err)
	}
}

func TestParamsEngine(t *testing.T) {
	p := engine.GenerateParams{MaxTokens: 9, Stop: []string{"x"}, IgnoreEOS: true, Sampler: engine.DefaultSampler()}
	p.Sampler.Seed = 42
	if got := wire.FromEngine(p).Engine(); !reflect.DeepEqual(got, p) {
		t.Fatalf("got %+v, want %+v", got, p)
	}
	// counts outside uint32 clamp to its range
	p.MaxTokens, p.Sampler.TopK, p.Sampler.RepeatLastN = -5, 0, math.MaxInt
	w := wire.FromEngine(p)
	if w.MaxTokens != 0 || w.Sampler.TopK != 0 || w.Sampler.RepeatLastN != math.MaxUint32 && strconv.IntSize == 64 {
		t.Fatalf("clamped: %+v", w)
	}
}

// TestEncodeLimits: the encoder refuses what the decoder would.
func TestEncodeLimits(t *testing.T) {
	long := strings.Repeat("x", wire.MaxString+1)
	for _, m := range []wire.Message{
		&wire.Hello{Name: long},
		&wire.Hello{Models: make([]wire.ModelInfo, wire.MaxModels+1)},
		&wire.Tokens{IDs: make([]int32, wire.MaxTokensPerFrame+1)},
		&wire.Tokens{IDs: []int32{-1}},
		&wire.Tokens{IDs: []int32{wire.MaxTokenID + 1}},
		&wire.JobRequest{Prompt: make([]int32, wire.MaxTokens+1)},
		&wire.JobRequest{Params: wire.Params{Stop: make([]string, wire.MaxStops+1)}},
		&wire.JobEnd{Finish: "a very long finish reason"},
		&wire.JobEnd{Proof: make([]byte, wire.MaxProof+1)},
		&wire.VerifyRequest{Prompt: make([]int32, wire.MaxTokens/2+1), Output: make([]int32, wire.MaxTokens/2)},
		&wire.Error{Message: "\xff"},
	} {
		if b, err := wire.Encode(m); err == nil {
			t.Errorf("%s: encoded %d bytes past a limit", m.Type(), len(b))
		}
	}
}

// TestDecodeLimits: lengths over a limit, or over what is present, fail
// before allocation; leftovers, bad bools and unknown types fail.
func TestDecodeLimits(t *testing.T) {
	frame := func(typ wire.Type, payload ...byte) []byte {
		b := []byte{byte(typ), 0, 0, 0, 0}
		binary.BigEndian.PutUint32(b[1:], uint32(len(payload)))
		return append(b, payload...)
	}
	uv := func(v uint64) []byte { return binary.AppendUvarint(nil, v) }
	cases := map[string][]byte{
		"unknown type":     frame(99),
		"zero type":        frame(0),
		"tokens count":     frame(wire.TypeTokens, uv(wire.MaxTokensPerFrame+1)...),
		"tokens truncated": frame(wire.TypeTokens, 3, 1, 2),
		"token id":         frame(wire.TypeTokens, append([]byte{1}, uv(wire.MaxTokenID+1)...)...),
		"leftover":         frame(wire.TypeTokens, 1, 5, 0),
		"bad bool":         frame(wire.TypeHeartbeat, 1, 0, 0, 2, 0, 0, 0, 0),
		"string length":    frame(wire.TypeError, append([]byte{1}, uv(1<<40)...)...),
		"string truncated": frame(wire.TypeError, 1, 10, 'a'),
		"bad uvarint":      frame(wire.TypeError, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01),
		"models count":     frame(wire.TypeHello, append([]byte{1, 0, 0, 0, 0, 0, 0}, uv(1000)...)...),
		"empty heartbeat":  frame(wire.TypeHeartbeat),
	}
	for name, b := range cases {
		if m, _, err := wire.DecodeFrame(b); err == nil {
			t.Errorf("%s: decoded %+v", name, m)
		} else if name != "tokens truncated" && !errors.Is(err, wire.ErrMalformed) {
			t.Errorf("%s: %v does not wrap ErrMalformed", name, err)
		}
	}
	// a frame header announcing more than MaxFrame is refused before the
	// payload is read (or allocated)
	big := []byte{byte(wire.TypeTokens), 0, 0, 0, 0}
	binary.BigEndian.PutUint32(big[1:], wire.MaxFrame+1)
	if _, err := wire.Read(bytes.NewReader(big)); !errors.Is(err, wire.ErrMalformed) {
		t.Fatalf("oversized frame: %v", err)
	}
	// a truncated frame is an unexpected EOF, not a clean one
	b, _ := wire.Encode(&wire.Tokens{IDs: []int32{1, 2, 3}})
	if _, err := wire.Read(bytes.NewReader(b[:len(b)-1])); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("truncated frame: %v", err)
	}
}

func BenchmarkTokensFrame(b *testing.B) {
	m := &wire.Tokens{IDs: []int32{31999}}
	buf := make([]byte, 0, 64)
	b.ReportAllocs()
	for b.Loop() {
		out, err := wire.AppendFrame(buf[:0], m)
		if err != nil {
			b.Fatal(err)
		}
		if _, _, err := wire.DecodeFrame(out); err != nil {
			b.Fatal(err)
		}
	}
}
