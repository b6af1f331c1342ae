package fingerprint

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Proof is a decoded fingerprint.
//
// Wire format (little-endian), HeaderSize bytes then one record per group:
//
//	0  magic "STFP"
//	4  version (uint8, 1)
//	5  reserved (uint8, 0)
//	6  Interval (uint16)
//	8  TopK (uint16)
//	10 PromptTopK (uint16)
//	12 Dim (uint32)
//	16 Prompt (uint32): prompt tokens
//	20 Tokens (uint32): prompt + output tokens covered
//	24 groups: scale exponent E (int8), index modulus (uint16), then
//	   n coefficients (uint16, each < Prime), n fixed by the header
//
// The header determines the number of groups and the entries of each, so
// the total length is known before anything is allocated, and must match.
type Proof struct {
	Params Params
	Dim    int
	Prompt int
	Tokens int
	Groups []Group
}

// Group is one group's commitment.
type Group struct {
	Exp     int8     // values are in units of 2^(Exp−ValueBits)
	Modulus uint16   // entry indices are reduced modulo this before evaluation
	Coef    []uint16 // polynomial coefficients, constant term first
}

// ErrMalformed wraps every decoding error.
var ErrMalformed = errors.New("fingerprint: malformed proof")

func (p *Proof) layout() layout {
	return layout{p: p.Params, dim: p.Dim, prompt: p.Prompt, tokens: p.Tokens}
}

// checkHeader validates the header fields of a proof or encoder.
func (l layout) check() error {
	if err := l.p.Validate(); err != nil {
		return err
	}
	switch {
	case l.dim < 1 || l.dim > MaxDim:
		return fmt.Errorf("fingerprint: dimension %d is out of range [1, %d]", l.dim, MaxDim)
	case l.prompt < 1 || l.prompt > MaxTokens:
		return fmt.Errorf("fingerprint: prompt of %d tokens is out of range [1, %d]", l.prompt, MaxTokens)
	case l.tokens < l.prompt || l.tokens > MaxTokens:
		return fmt.Errorf("fingerprint: %d tokens for a prompt of %d (at most %d)", l.tokens, l.prompt, MaxTokens)
	}
	return nil
}

// size is the encoded length of a proof with this layout.
func (l layout) size() uint64 {
	n := uint64(HeaderSize)
	iv := uint64(l.p.Interval)
	for _, part := range []struct{ tokens, per uint64 }{
		{uint64(l.prompt), uint64(min(l.p.PromptTopK, l.dim))},
		{uint64(l.tokens - l.prompt), uint64(min(l.p.TopK, l.dim))},
	} {
		full, rem := part.tokens/iv, part.tokens%iv
		n += full * (GroupHeaderSize + 2*iv*part.per)
		if rem > 0 {
			n += GroupHeaderSize + 2*rem*part.per
		}
	}
	return n
}

// Size is the proof's encoded length in bytes.
func (p *Proof) Size() int { return int(p.layout().size()) }

// Encode returns the proof's binary form. It panics if the proof is not
// consistent (a programming error: proofs come from Encoder or Decode).
func (p *Proof) Encode() []byte {
	l := p.layout()
	if err := l.check(); err != nil {
		panic(err)
	}
	if len(p.Groups) != l.groups() {
		panic(fmt.Sprintf("fingerprint: %d groups, layout has %d", len(p.Groups), l.groups()))
	}
	b := make([]byte, 0, l.size())
	b = append(b, Magic...)
	b = append(b, Version, 0)
	b = binary.LittleEndian.AppendUint16(b, uint16(p.Params.Interval))
	b = binary.LittleEndian.AppendUint16(b, uint16(p.Params.TopK))
	b = binary.LittleEndian.AppendUint16(b, uint16(p.Params.PromptTopK))
	b = binary.LittleEndian.AppendUint32(b, uint32(p.Dim))
	b = binary.LittleEndian.AppendUint32(b, uint32(p.Prompt))
	b = binary.LittleEndian.AppendUint32(b, uint32(p.Tokens))
	for g, gr := range p.Groups {
		if k := l.groupTokens(g) * l.perToken(g); len(gr.Coef) != k {
			panic(fmt.Sprintf("fingerprint: group %d has %d coefficients, want %d", g, len(gr.Coef), k))
		}
		b = append(b, byte(gr.Exp))
		b = binary.LittleEndian.AppendUint16(b, gr.Modulus)
		for _, c := range gr.Coef {
			b = binary.LittleEndian.AppendUint16(b, c)
		}
	}
	return b
}

// Decode parses a proof, checking every field before it is used. Any
// error wraps ErrMalformed.
func Decode(b []byte) (*Proof, error) {
	if len(b) < HeaderSize {
		return nil, fmt.Errorf("%w: %d bytes, shorter than the %d-byte header", ErrMalformed, len(b), HeaderSize)
	}
	if string(b[:4]) != Magic {
		return nil, fmt.Errorf("%w: bad magic %q", ErrMalformed, b[:4])
	}
	if b[4] != Version {
		return nil, fmt.Errorf("%w: version %d, this build reads %d", ErrMalformed, b[4], Version)
	}
	if b[5] != 0 {
		return nil, fmt.Errorf("%w: reserved byte is %d", ErrMalformed, b[5])
	}
	p := &Proof{
		Params: Params{
			Interval:   int(binary.LittleEndian.Uint16(b[6:])),
			TopK:       int(binary.LittleEndian.Uint16(b[8:])),
			PromptTopK: int(binary.LittleEndian.Uint16(b[10:])),
		},
		Dim:    int(binary.LittleEndian.Uint32(b[12:])),
		Prompt: int(binary.LittleEndian.Uint32(b[16:])),
		Tokens: int(binary.LittleEndian.Uint32(b[20:])),
	}
	l := p.layout()
	if err := l.check(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if want := l.size(); uint64(len(b)) != want {
		return nil, fmt.Errorf("%w: %d bytes, the header describes %d", ErrMalformed, len(b), want)
	}
	ng := l.groups()
	p.Groups = make([]Group, ng)
	coef := make([]uint16, (len(b)-HeaderSize-ng*GroupHeaderSize)/2) // one backing array
	off := HeaderSize
	for g := range p.Groups {
		k := l.groupTokens(g) * l.perToken(g)
		gr := &p.Groups[g]
		gr.Exp = int8(b[off])
		gr.Modulus = binary.LittleEndian.Uint16(b[off+1:])
		off += GroupHeaderSize
		if gr.Modulus < MinModulus || gr.Modulus > Prime {
			return nil, fmt.Errorf("%w: group %d: index modulus %d is out of range [%d, %d]", ErrMalformed, g, gr.Modulus, MinModulus, Prime)
		}
		gr.Coef, coef = coef[:k:k], coef[k:]
		for i := range gr.Coef {
			c := binary.LittleEndian.Uint16(b[off:])
			if c >= Prime {
				return nil, fmt.Errorf("%w: group %d: coefficient %d is not below %d", ErrMalformed, g, c, Prime)
			}
			gr.Coef[i] = c
			off += 2
		}
	}
	return p, nil
}
