package wire

import (
	"fmt"
	"math"
	"strings"
	"unicode/utf8"

	"github.com/stokehq/stoke/engine"
)

// Hardware describes a node's machine.
type Hardware struct {
	GPU   string // device name, "" without one
	VRAM  uint64 // bytes of GPU memory offered
	CPU   string // CPU model name
	Cores uint32 // logical CPUs
	RAM   uint64 // bytes
}

// ModelInfo identifies a served model by content, not by name.
type ModelInfo struct {
	SHA256  [32]byte // of the whole GGUF file
	Arch    string   // architecture family (llama, qwen3, …)
	Name    string   // for humans
	Quant   string   // weight type of the bulk of the tensors, e.g. Q8_0
	Params  uint64
	Context uint32 // tokens per slot on this node
}

// Hello opens a node's control stream: who it is and what it serves.
type Hello struct {
	Version            uint32
	Name               string
	Hardware           Hardware
	Models             []ModelInfo
	Slots              uint32  // jobs it decodes at once
	TokensPerSec       float32 // measured decode speed of one job
	PromptTokensPerSec float32 // measured prefill speed
	Verifier           bool    // it accepts verification requests
}

// Welcome accepts a node.
type Welcome struct {
	Version         uint32
	HeartbeatMillis uint32 // how often the node must send a Heartbeat
	Coordinator     string // the coordinator's name, for logs
}

// Heartbeat is a node's periodic liveness and load report.
type Heartbeat struct {
	Seq          uint64
	Active       uint32 // jobs generating
	Queued       uint32 // jobs waiting for a slot
	Draining     bool   // finishing in-flight jobs, refusing new ones
	TokensPerSec float32
}

// Sampler mirrors engine.SamplerParams.
type Sampler struct {
	Temperature      float32
	TopK             uint32
	TopP             float32
	MinP             float32
	RepeatPenalty    float32
	RepeatLastN      uint32
	PresencePenalty  float32
	FrequencyPenalty float32
	Seed             uint64
}

// Params mirrors engine.GenerateParams.
type Params struct {
	MaxTokens uint32 // 0: until EOS or the context is full
	Stop      []string
	IgnoreEOS bool
	Sampler   Sampler
}

// JobRequest asks a node to generate.
type JobRequest struct {
	ID          uint64
	Model       [32]byte
	Prompt      []int32
	Params      Params
	Fingerprint bool // commit to a fingerprint for verification
}

// Tokens carries generated token ids, in order.
type Tokens struct {
	IDs []int32
}

// JobEnd ends a job's stream.
type JobEnd struct {
	Finish       string // engine.FinishStop or engine.FinishLength
	PromptTokens uint32
	Tokens       uint32 // ids sent in Tokens messages
	PromptMicros uint64
	DecodeMicros uint64
	Proof        []byte // the fingerprint, when asked for
}

// VerifyRequest asks a node to check another node's job.
type VerifyRequest struct {
	ID     uint64
	Model  [32]byte
	Prompt []int32
	Output []int32
	Params Params
	Proof  []byte
}

// VerifyResult answers a VerifyRequest.
type VerifyResult struct {
	ID     uint64
	OK     bool
	Reason string
	Micros uint64 // time the check took
}

// Error reports a failure; it is also an error.
type Error struct {
	Code    Code
	Message string
}

func (*Hello) Type() Type         { return TypeHello }
func (*Welcome) Type() Type       { return TypeWelcome }
func (*Heartbeat) Type() Type     { return TypeHeartbeat }
func (*JobRequest) Type() Type    { return TypeJobRequest }
func (*Tokens) Type() Type        { return TypeTokens }
func (*JobEnd) Type() Type        { return TypeJobEnd }
func (*VerifyRequest) Type() Type { return TypeVerifyRequest }
func (*VerifyResult) Type() Type  { return TypeVerifyResult }
func (*Error) Type() Type         { return TypeError }

func (e *Error) Error() string { return fmt.Sprintf("%s: %s", e.Code, e.Message) }

// Errorf builds an Error.
func Errorf(c Code, format string, a ...any) *Error {
	return &Error{Code: c, Message: Truncate(fmt.Sprintf(format, a...), MaxString)}
}

// Truncate cuts s to at most n bytes on a character boundary, and
// replaces invalid UTF-8, so that it encodes as a wire string.
func Truncate(s string, n int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

func (m *Hello) encode(e *encoder) {
	e.uint(uint64(m.Version))
	e.str("name", m.Name, MaxString)
	h := &m.Hardware
	e.str("gpu", h.GPU, MaxString)
	e.uint(h.VRAM)
	e.str("cpu", h.CPU, MaxString)
	e.uint(uint64(h.Cores))
	e.uint(h.RAM)
	e.count("models", len(m.Models), MaxModels)
	for _, mi := range m.Models {
		e.sha(mi.SHA256)
		e.str("arch", mi.Arch, MaxString)
		e.str("model name", mi.Name, MaxString)
		e.str("quant", mi.Quant, MaxString)
		e.uint(mi.Params)
		e.uint(uint64(mi.Context))
	}
	e.uint(uint64(m.Slots))
	e.f32(m.TokensPerSec)
	e.f32(m.PromptTokensPerSec)
	e.bool(m.Verifier)
}

func (m *Hello) decode(d *decoder) {
	m.Version = uint32(d.bounded("version", math.MaxUint32))
	m.Name = d.str("name", MaxString)
	h := &m.Hardware
	h.GPU = d.str("gpu", MaxString)
	h.VRAM = d.uint()
	h.CPU = d.str("cpu", MaxString)
	h.Cores = uint32(d.bounded("cores", math.MaxUint32))
	h.RAM = d.uint()
	// smallest model: sha + 3 empty strings + 2 one-byte ints
	n := d.count("models", MaxModels, 32+5)
	for range n {
		var mi ModelInfo
		mi.SHA256 = d.sha()
		mi.Arch = d.str("arch", MaxString)
		mi.Name = d.str("model name", MaxString)
		mi.Quant = d.str("quant", MaxString)
		mi.Params = d.uint()
		mi.Context = uint32(d.bounded("context", math.MaxUint32))
		if d.err != nil {
			return
		}
		m.Models = append(m.Models, mi)
	}
	m.Slots = uint32(d.bounded("slots", math.MaxUint32))
	m.TokensPerSec = d.f32()
	m.PromptTokensPerSec = d.f32()
	m.Verifier = d.bool()
}

func (m *Welcome) encode(e *encoder) {
	e.uint(uint64(m.Version))
	e.uint(uint64(m.HeartbeatMillis))
	e.str("coordinator", m.Coordinator, MaxString)
}

func (m *Welcome) decode(d *decoder) {
	m.Version = uint32(d.bounded("version", math.MaxUint32))
	m.HeartbeatMillis = uint32(d.bounded("heartbeat", math.MaxUint32))
	m.Coordinator = d.str("coordinator", MaxString)
}

func (m *Heartbeat) encode(e *encoder) {
	e.uint(m.Seq)
	e.uint(uint64(m.Active))
	e.uint(uint64(m.Queued))
	e.bool(m.Draining)
	e.f32(m.TokensPerSec)
}

func (m *Heartbeat) decode(d *decoder) {
	m.Seq = d.uint()
	m.Active = uint32(d.bounded("active", math.MaxUint32))
	m.Queued = uint32(d.bounded("queued", math.MaxUint32))
	m.Draining = d.bool()
	m.TokensPerSec = d.f32()
}

func (p *Params) encode(e *encoder) {
	e.uint(uint64(p.MaxTokens))
	e.count("stop strings", len(p.Stop), MaxStops)
	for _, s := range p.Stop {
		e.str("stop string", s, MaxString)
	}
	e.bool(p.IgnoreEOS)
	s := &p.Sampler
	e.f32(s.Temperature)
	e.uint(uint64(s.TopK))
	e.f32(s.TopP)
	e.f32(s.MinP)
	e.f32(s.RepeatPenalty)
	e.uint(uint64(s.RepeatLastN))
	e.f32(s.PresencePenalty)
	e.f32(s.FrequencyPenalty)
	e.uint(s.Seed)
}

func (p *Params) decode(d *decoder) {
	p.MaxTokens = uint32(d.bounded("max tokens", math.MaxUint32))
	n := d.count("stop strings", MaxStops, 1)
	for range n {
		s := d.str("stop string", MaxString)
		if d.err != nil {
			return
		}
		p.Stop = append(p.Stop, s)
	}
	p.IgnoreEOS = d.bool()
	s := &p.Sampler
	s.Temperature = d.f32()
	s.TopK = uint32(d.bounded("top-k", math.MaxUint32))
	s.TopP = d.f32()
	s.MinP = d.f32()
	s.RepeatPenalty = d.f32()
	s.RepeatLastN = uint32(d.bounded("repeat-last-n", math.MaxUint32))
	s.PresencePenalty = d.f32()
	s.FrequencyPenalty = d.f32()
	s.Seed = d.uint()
}

func (m *JobRequest) encode(e *encoder) {
	e.uint(m.ID)
	e.sha(m.Model)
	e.tokens("prompt tokens", m.Prompt, MaxTokens)
	m.Params.encode(e)
	e.bool(m.Fingerprint)
}

func (m *JobRequest) decode(d *decoder) {
	m.ID = d.uint()
	m.Model = d.sha()
	m.Prompt = d.tokens("prompt tokens", MaxTokens)
	m.Params.decode(d)
	m.Fingerprint = d.bool()
}

func (m *Tokens) encode(e *encoder) { e.tokens("tokens", m.IDs, MaxTokensPerFrame) }

func (m *Tokens) decode(d *decoder) { m.IDs = d.tokens("tokens", MaxTokensPerFrame) }

func (m *JobEnd) encode(e *encoder) {
	e.str("finish", m.Finish, MaxFinish)
	e.uint(uint64(m.PromptTokens))
	e.uint(uint64(m.Tokens))
	e.uint(m.PromptMicros)
	e.uint(m.DecodeMicros)
	e.bytes("proof", m.Proof, MaxProof)
}

func (m *JobEnd) decode(d *decoder) {
	m.Finish = d.str("finish", MaxFinish)
	m.PromptTokens = uint32(d.bounded("prompt tokens", MaxTokens))
	m.Tokens = uint32(d.bounded("tokens", MaxTokens))
	m.PromptMicros = d.uint()
	m.DecodeMicros = d.uint()
	m.Proof = d.bytes("proof", MaxProof)
}

func (m *VerifyRequest) encode(e *encoder) {
	e.uint(m.ID)
	e.sha(m.Model)
	if len(m.Prompt)+len(m.Output) > MaxTokens {
		e.fail("prompt and output of %d tokens are over the limit of %d", len(m.Prompt)+len(m.Output), MaxTokens)
	}
	e.tokens("prompt tokens", m.Prompt, MaxTokens)
	e.tokens("output tokens", m.Output, MaxTokens)
	m.Params.encode(e)
	e.bytes("proof", m.Proof, MaxProof)
}

func (m *VerifyRequest) decode(d *decoder) {
	m.ID = d.uint()
	m.Model = d.sha()
	m.Prompt = d.tokens("prompt tokens", MaxTokens)
	m.Output = d.tokens("output tokens", MaxTokens-len(m.Prompt))
	m.Params.decode(d)
	m.Proof = d.bytes("proof", MaxProof)
}

func (m *VerifyResult) encode(e *encoder) {
	e.uint(m.ID)
	e.bool(m.OK)
	e.str("reason", m.Reason, MaxString)
	e.uint(m.Micros)
}

func (m *VerifyResult) decode(d *decoder) {
	m.ID = d.uint()
	m.OK = d.bool()
	m.Reason = d.str("reason", MaxString)
	m.Micros = d.uint()
}

func (m *Error) encode(e *encoder) {
	e.uint(uint64(m.Code))
	e.str("message", m.Message, MaxString)
}

func (m *Error) decode(d *decoder) {
	m.Code = Code(d.uint())
	m.Message = d.str("message", MaxString)
}

// FromEngine converts generation parameters for the wire.
func FromEngine(p engine.GenerateParams) Params {
	s := p.Sampler
	return Params{
		MaxTokens: clampU32(p.MaxTokens),
		Stop:      p.Stop,
		IgnoreEOS: p.IgnoreEOS,
		Sampler: Sampler{
			Temperature: s.Temperature, TopK: clampU32(s.TopK), TopP: s.TopP, MinP: s.MinP,
			RepeatPenalty: s.RepeatPenalty, RepeatLastN: clampU32(s.RepeatLastN),
			PresencePenalty: s.PresencePenalty, FrequencyPenalty: s.FrequencyPenalty, Seed: s.Seed,
		},
	}
}

// clampU32 is v clamped to [0, 2³²−1] (written so that it compiles where
// int has 32 bits).
func clampU32(v int) uint32 {
	switch {
	case v < 0:
		return 0
	case uint64(v) > math.MaxUint32:
		return math.MaxUint32
	}
	return uint32(v)
}

// Engine converts wire parameters for the engine (the engine validates
// their ranges).
func (p Params) Engine() engine.GenerateParams {
	s := p.Sampler
	return engine.GenerateParams{
		MaxTokens: int(p.MaxTokens),
		Stop:      p.Stop,
		IgnoreEOS: p.IgnoreEOS,
		Sampler: engine.SamplerParams{
			Temperature: s.Temperature, TopK: int(s.TopK), TopP: s.TopP, MinP: s.MinP,
			RepeatPenalty: s.RepeatPenalty, RepeatLastN: int(s.RepeatLastN),
			PresencePenalty: s.PresencePenalty, FrequencyPenalty: s.FrequencyPenalty, Seed: s.Seed,
		},
	}
}
