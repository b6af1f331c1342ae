package wire

import (
	"encoding/binary"
	"fmt"
	"math"
	"unicode/utf8"
)

// encoder appends fields, recording the first limit a field breaks.
type encoder struct {
	b   []byte
	err error
}

func (e *encoder) fail(format string, a ...any) {
	if e.err == nil {
		e.err = fmt.Errorf(format, a...)
	}
}

func (e *encoder) uint(v uint64) { e.b = binary.AppendUvarint(e.b, v) }

func (e *encoder) f32(v float32) { e.b = binary.BigEndian.AppendUint32(e.b, math.Float32bits(v)) }

func (e *encoder) bool(v bool) {
	if v {
		e.b = append(e.b, 1)
	} else {
		e.b = append(e.b, 0)
	}
}

func (e *encoder) sha(v [32]byte) { e.b = append(e.b, v[:]...) }

func (e *encoder) str(what, s string, limit int) {
	if len(s) > limit {
		e.fail("%s of %d bytes is over the limit of %d", what, len(s), limit)
	}
	if !utf8.ValidString(s) {
		e.fail("%s is not valid UTF-8", what)
	}
	e.uint(uint64(len(s)))
	e.b = append(e.b, s...)
}

func (e *encoder) bytes(what string, p []byte, limit int) {
	if len(p) > limit {
		e.fail("%s of %d bytes is over the limit of %d", what, len(p), limit)
	}
	e.uint(uint64(len(p)))
	e.b = append(e.b, p...)
}

func (e *encoder) tokens(what string, t []int32, limit int) {
	if len(t) > limit {
		e.fail("%d %s are over the limit of %d", len(t), what, limit)
	}
	e.uint(uint64(len(t)))
	for _, id := range t {
		if id < 0 || id > MaxTokenID {
			e.fail("%s: token id %d is outside [0, %d]", what, id, MaxTokenID)
		}
		e.uint(uint64(uint32(id)))
	}
}

// count writes a list length after checking it.
func (e *encoder) count(what string, n, limit int) {
	if n > limit {
		e.fail("%d %s are over the limit of %d", n, what, limit)
	}
	e.uint(uint64(n))
}

// decoder reads fields, checking each length against its limit and the
// bytes left before using it. After the first error every read returns a
// zero value.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(format string, a ...any) {
	if d.err == nil {
		d.err = fmt.Errorf(format, a...)
	}
	d.b = nil
}

func (d *decoder) uint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("bad uvarint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

// bounded reads a uvarint that must be ≤ limit.
func (d *decoder) bounded(what string, limit uint64) uint64 {
	v := d.uint()
	if v > limit {
		d.fail("%s %d is over the limit of %d", what, v, limit)
		return 0
	}
	return v
}

func (d *decoder) f32() float32 {
	if d.err != nil {
		return 0
	}
	if len(d.b) < 4 {
		d.fail("truncated float")
		return 0
	}
	v := math.Float32frombits(binary.BigEndian.Uint32(d.b))
	d.b = d.b[4:]
	return v
}

func (d *decoder) bool() bool {
	if d.err != nil {
		return false
	}
	if len(d.b) < 1 {
		d.fail("truncated bool")
		return false
	}
	c := d.b[0]
	d.b = d.b[1:]
	if c > 1 {
		d.fail("bool byte %d", c)
	}
	return c == 1
}

func (d *decoder) sha() (v [32]byte) {
	if d.err != nil {
		return v
	}
	if len(d.b) < len(v) {
		d.fail("truncated sha256")
		return v
	}
	copy(v[:], d.b)
	d.b = d.b[len(v):]
	return v
}

func (d *decoder) raw(what string, limit int) []byte {
	n := d.uint()
	if d.err != nil {
		return nil
	}
	if n > uint64(limit) {
		d.fail("%s of %d bytes is over the limit of %d", what, n, limit)
		return nil
	}
	if n > uint64(len(d.b)) {
		d.fail("%s of %d bytes but only %d left", what, n, len(d.b))
		return nil
	}
	p := d.b[:n:n]
	d.b = d.b[n:]
	return p
}

func (d *decoder) str(what string, limit int) string {
	p := d.raw(what, limit)
	if d.err == nil && !utf8.Valid(p) {
		d.fail("%s is not valid UTF-8", what)
		return ""
	}
	return string(p)
}

func (d *decoder) bytes(what string, limit int) []byte {
	p := d.raw(what, limit)
	if len(p) == 0 {
		return nil
	}
	return append([]byte(nil), p...)
}

// count reads a list length: at most limit, and at most the bytes left
// divided by the smallest encoding of one item.
func (d *decoder) count(what string, limit, minItem int) int {
	n := d.uint()
	if d.err != nil {
		return 0
	}
	if n > uint64(limit) {
		d.fail("%d %s are over the limit of %d", n, what, limit)
		return 0
	}
	if n*uint64(minItem) > uint64(len(d.b)) {
		d.fail("%d %s cannot fit in the %d bytes left", n, what, len(d.b))
		return 0
	}
	return int(n)
}

func (d *decoder) tokens(what string, limit int) []int32 {
	n := d.count(what, limit, 1)
	if n == 0 {
		return nil
	}
	t := make([]int32, n)
	for i := range t {
		v := d.uint()
		if v > MaxTokenID {
			d.fail("%s: token id %d is over %d", what, v, MaxTokenID)
		}
		if d.err != nil {
			return nil
		}
		t[i] = int32(v)
	}
	return t
}
