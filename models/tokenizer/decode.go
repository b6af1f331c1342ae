package tokenizer

import (
	"strings"
	"unicode/utf8"
)

// buildPieces decodes every token once (llama.cpp's token-to-piece cache,
// built with special=true):
//   - normal tokens: SPM turns ▁ into a space; BPE maps the GPT-2
//     characters back to bytes;
//   - byte tokens <0xNN>: the byte;
//   - control, unknown and user-defined tokens: their text as written;
//   - unused and undefined tokens: nothing.
//
// Byte-typed tokens of a BPE vocabulary are decoded like normal ones
// (llama.cpp prints nothing for them).
func (t *Tokenizer) buildPieces() {
	size := 0
	for _, s := range t.v.Tokens {
		size += len(s)
	}
	t.pieces = make([]byte, 0, size)
	t.pieceOff = make([]uint32, len(t.v.Tokens)+1)
	for id, s := range t.v.Tokens {
		switch t.types[id] {
		case TypeControl, TypeUnknown, TypeUserDefined:
			t.pieces = append(t.pieces, s...)
		case TypeNormal:
			if t.spm {
				t.pieces = appendUnescaped(t.pieces, s)
			} else {
				t.pieces = decodeBPEText(t.pieces, s)
			}
		case TypeByte:
			if !t.spm {
				t.pieces = decodeBPEText(t.pieces, s)
			} else if b, ok := parseByteToken(s); ok {
				t.pieces = append(t.pieces, b)
			}
		}
		t.pieceOff[id+1] = uint32(len(t.pieces))
	}
}

// appendUnescaped appends s with every ▁ replaced by a space.
func appendUnescaped(dst []byte, s string) []byte {
	for {
		i := strings.Index(s, spmSpace)
		if i < 0 {
			return append(dst, s...)
		}
		dst = append(append(dst, s[:i]...), ' ')
		s = s[i+len(spmSpace):]
	}
}

// parseByteToken reads the byte of a "<0xNN>" token text.
func parseByteToken(s string) (byte, bool) {
	if len(s) != 6 || s[:3] != "<0x" || s[5] != '>' {
		return 0, false
	}
	hi, ok1 := unhex(s[3])
	lo, ok2 := unhex(s[4])
	return hi<<4 | lo, ok1 && ok2
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// piece returns id's cached bytes (shared; not to be modified), empty for
// control and unknown tokens unless special, and for ids out of range.
func (t *Tokenizer) piece(id int32, special bool) []byte {
	if id < 0 || int(id) >= len(t.types) {
		return nil
	}
	if !special {
		if ty := t.types[id]; ty == TypeControl || ty == TypeUnknown {
			return nil
		}
	}
	a, b := t.pieceOff[id], t.pieceOff[id+1]
	return t.pieces[a:b:b]
}

// TokenPiece returns the bytes token id stands for: a byte token's byte,
// an SPM piece with ▁ as space, a BPE piece mapped back from the GPT-2
// alphabet, a user-defined token's text. Control and unknown tokens (BOS,
// <|im_end|>, <unk>) give nothing; see Piece. The slice is the caller's.
func (t *Tokenizer) TokenPiece(id int32) []byte {
	return t.Piece(id, false)
}

// Piece is TokenPiece, but with special set control and unknown tokens give
// their text (as llama.cpp's token_to_piece with special=true).
func (t *Tokenizer) Piece(id int32, special bool) []byte {
	p := t.piece(id, special)
	if p == nil {
		return nil
	}
	return append([]byte(nil), p...)
}

// Decode returns the text of ids, control and unknown tokens left out.
// For an SPM vocabulary with AddSpacePrefix, the space the encoder put in
// front of the text is removed again: the first non-empty piece loses one
// leading space, so Decode(Encode(s, addSpecial, false)) == s. (llama.cpp's
// llama_detokenize does the same for a sequence without BOS; it keeps the
// space after a BOS it does not remove.) Bytes that do not form valid UTF-8
// are returned as they are; use a StreamDecoder for displayable text.
func (t *Tokenizer) Decode(ids []int32) string {
	return string(t.AppendDecode(nil, ids))
}

// AppendDecode appends the text of ids to dst, as Decode.
func (t *Tokenizer) AppendDecode(dst []byte, ids []int32) []byte {
	strip := t.spm && t.v.AddSpacePrefix
	for _, id := range ids {
		p := t.piece(id, false)
		if len(p) == 0 {
			continue
		}
		if strip {
			strip = false
			if p[0] == ' ' {
				p = p[1:]
			}
		}
		dst = append(dst, p...)
	}
	return dst
}

// StreamDecoder turns tokens into text one at a time, as they are
// generated. It never emits part of a UTF-8 character: bytes of a
// character split over several tokens are held until it completes. Bytes
// that cannot start or continue a character are emitted as U+FFFD, so all
// output is valid UTF-8. Pieces are emitted as they are (no leading space
// is removed: generated text continues a prompt). Not safe for concurrent
// use.
type StreamDecoder struct {
	t       *Tokenizer
	special bool
	pending []byte
	out     []byte
}

// NewStreamDecoder starts a decoder; control tokens produce nothing.
func (t *Tokenizer) NewStreamDecoder() *StreamDecoder {
	return &StreamDecoder{t: t}
}

// NewStreamDecoderSpecial starts a decoder that writes control and
// unknown tokens as their text.
func (t *Tokenizer) NewStreamDecoderSpecial() *StreamDecoder {
	return &StreamDecoder{t: t, special: true}
}

// Add takes the next token and returns the text that is now complete
// (possibly "").
func (d *StreamDecoder) Add(id int32) string {
	d.pending = append(d.pending, d.t.piece(id, d.special)...)
	return d.drain(false)
}

// Flush returns whatever is held, an incomplete character as U+FFFD per
// byte, and resets the decoder.
func (d *StreamDecoder) Flush() string {
	return d.drain(true)
}

// Pending reports how many bytes are held back waiting for the rest of a
// character.
func (d *StreamDecoder) Pending() int { return len(d.pending) }

func (d *StreamDecoder) drain(all bool) string {
	p := d.pending
	out := d.out[:0]
	i := 0
	for i < len(p) {
		c := p[i]
		if c < utf8.RuneSelf {
			out = append(out, c)
			i++
			continue
		}
		r, n := utf8.DecodeRune(p[i:])
		if r != utf8.RuneError || n > 1 {
			out = append(out, p[i:i+n]...)
			i += n
			continue
		}
		if !all && !utf8.FullRune(p[i:]) {
			break // the start of a character whose rest is still to come
		}
		out = append(out, "\uFFFD"...)
		i++
	}
	d.pending = append(d.pending[:0], p[i:]...)
	d.out = out
	return string(out)
}
