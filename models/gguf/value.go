package gguf

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// ValueType is the type tag of a GGUF metadata value, as the file stores it.
type ValueType uint32

// The GGUF metadata value types. The names carry a Type prefix because the
// bare names (Uint32, String, ...) are the value constructors.
const (
	TypeUint8   ValueType = 0
	TypeInt8    ValueType = 1
	TypeUint16  ValueType = 2
	TypeInt16   ValueType = 3
	TypeUint32  ValueType = 4
	TypeInt32   ValueType = 5
	TypeFloat32 ValueType = 6
	TypeBool    ValueType = 7
	TypeString  ValueType = 8
	TypeArray   ValueType = 9
	TypeUint64  ValueType = 10
	TypeInt64   ValueType = 11
	TypeFloat64 ValueType = 12
)

var typeNames = [...]string{
	TypeUint8:   "uint8",
	TypeInt8:    "int8",
	TypeUint16:  "uint16",
	TypeInt16:   "int16",
	TypeUint32:  "uint32",
	TypeInt32:   "int32",
	TypeFloat32: "float32",
	TypeBool:    "bool",
	TypeString:  "string",
	TypeArray:   "array",
	TypeUint64:  "uint64",
	TypeInt64:   "int64",
	TypeFloat64: "float64",
}

// Known reports whether t is one of the thirteen GGUF value types.
func (t ValueType) Known() bool { return t <= TypeFloat64 }

func (t ValueType) String() string {
	if t.Known() {
		return typeNames[t]
	}
	return fmt.Sprintf("valuetype(%d)", uint32(t))
}

// size is the encoded size of one scalar of type t: 0 for strings, arrays
// and unknown types, whose size is not fixed.
func (t ValueType) size() int {
	switch t {
	case TypeUint8, TypeInt8, TypeBool:
		return 1
	case TypeUint16, TypeInt16:
		return 2
	case TypeUint32, TypeInt32, TypeFloat32:
		return 4
	case TypeUint64, TypeInt64, TypeFloat64:
		return 8
	}
	return 0
}

func (t ValueType) isSigned() bool {
	return t == TypeInt8 || t == TypeInt16 || t == TypeInt32 || t == TypeInt64
}

func (t ValueType) isUnsigned() bool {
	return t == TypeUint8 || t == TypeUint16 || t == TypeUint32 || t == TypeUint64
}

func (t ValueType) isFloat() bool { return t == TypeFloat32 || t == TypeFloat64 }

// Value is one GGUF metadata value: a scalar, a string, or an array of any
// of these (arrays of arrays included). The zero Value is uint8 0.
//
// Arrays of fixed-size scalars are kept as their little-endian bytes, so a
// 150k-entry score table costs one allocation; string arrays as []string;
// arrays of arrays as []Value. Values are immutable once built: accessors
// that return slices return copies.
type Value struct {
	typ  ValueType
	elem ValueType // element type, arrays only
	bits uint64    // scalar payload: the value's little-endian bits, zero-extended
	str  string    // TypeString
	arr  any       // TypeArray: []byte (scalar elements), []string or []Value
}

// Type is the value's type tag.
func (v Value) Type() ValueType { return v.typ }

// Elem is the element type of an array; it is meaningless for other values.
func (v Value) Elem() ValueType { return v.elem }

// Len is the number of elements of an array, 0 for other values.
func (v Value) Len() int {
	if v.typ != TypeArray {
		return 0
	}
	switch a := v.arr.(type) {
	case []byte:
		return len(a) / v.elem.size()
	case []string:
		return len(a)
	case []Value:
		return len(a)
	}
	return 0
}

// Index returns element i of an array. Like a slice index it panics when v
// is not an array or i is out of range.
func (v Value) Index(i int) Value {
	if v.typ != TypeArray {
		panic(fmt.Sprintf("gguf: Index on a %s value", v.typ))
	}
	switch a := v.arr.(type) {
	case []byte:
		sz := v.elem.size()
		return scalarFromBytes(v.elem, a[i*sz:(i+1)*sz])
	case []string:
		return String(a[i])
	case []Value:
		return a[i]
	}
	panic(fmt.Sprintf("gguf: Index %d on an empty %s array", i, v.elem))
}

func scalarFromBytes(t ValueType, b []byte) Value {
	var bits uint64
	switch len(b) {
	case 1:
		bits = uint64(b[0])
	case 2:
		bits = uint64(binary.LittleEndian.Uint16(b))
	case 4:
		bits = uint64(binary.LittleEndian.Uint32(b))
	case 8:
		bits = binary.LittleEndian.Uint64(b)
	}
	return Value{typ: t, bits: bits}
}

// Scalar constructors.

func Uint8(x uint8) Value     { return Value{typ: TypeUint8, bits: uint64(x)} }
func Int8(x int8) Value       { return Value{typ: TypeInt8, bits: uint64(uint8(x))} }
func Uint16(x uint16) Value   { return Value{typ: TypeUint16, bits: uint64(x)} }
func Int16(x int16) Value     { return Value{typ: TypeInt16, bits: uint64(uint16(x))} }
func Uint32(x uint32) Value   { return Value{typ: TypeUint32, bits: uint64(x)} }
func Int32(x int32) Value     { return Value{typ: TypeInt32, bits: uint64(uint32(x))} }
func Uint64(x uint64) Value   { return Value{typ: TypeUint64, bits: x} }
func Int64(x int64) Value     { return Value{typ: TypeInt64, bits: uint64(x)} }
func Float32(x float32) Value { return Value{typ: TypeFloat32, bits: uint64(math.Float32bits(x))} }
func Float64(x float64) Value { return Value{typ: TypeFloat64, bits: math.Float64bits(x)} }
func String(s string) Value   { return Value{typ: TypeString, str: s} }

func Bool(x bool) Value {
	if x {
		return Value{typ: TypeBool, bits: 1}
	}
	return Value{typ: TypeBool}
}

// Array constructors. The slices are copied.

// Strings is an array of strings.
func Strings(s []string) Value {
	return Value{typ: TypeArray, elem: TypeString, arr: append([]string(nil), s...)}
}

// Float32s is an array of float32.
func Float32s(x []float32) Value {
	b := make([]byte, 4*len(x))
	for i, f := range x {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(f))
	}
	return Value{typ: TypeArray, elem: TypeFloat32, arr: b}
}

// Int32s is an array of int32.
func Int32s(x []int32) Value {
	b := make([]byte, 4*len(x))
	for i, n := range x {
		binary.LittleEndian.PutUint32(b[4*i:], uint32(n))
	}
	return Value{typ: TypeArray, elem: TypeInt32, arr: b}
}

// Uint32s is an array of uint32.
func Uint32s(x []uint32) Value {
	b := make([]byte, 4*len(x))
	for i, n := range x {
		binary.LittleEndian.PutUint32(b[4*i:], n)
	}
	return Value{typ: TypeArray, elem: TypeUint32, arr: b}
}

// ArrayOf is an array of elements of type elem, which may itself be
// TypeArray (arrays of arrays; the inner arrays may differ in element type
// and length). It panics if elem is unknown or an element is not of type
// elem: that is a programming error, not bad input.
func ArrayOf(elem ValueType, vals []Value) Value {
	if !elem.Known() {
		panic(fmt.Sprintf("gguf: ArrayOf unknown element type %d", uint32(elem)))
	}
	for i, x := range vals {
		if x.typ != elem {
			panic(fmt.Sprintf("gguf: ArrayOf(%s): element %d is %s", elem, i, x.typ))
		}
	}
	switch elem {
	case TypeString:
		s := make([]string, len(vals))
		for i, x := range vals {
			s[i] = x.str
		}
		return Value{typ: TypeArray, elem: elem, arr: s}
	case TypeArray:
		return Value{typ: TypeArray, elem: elem, arr: append([]Value(nil), vals...)}
	}
	sz := elem.size()
	b := make([]byte, sz*len(vals))
	for i, x := range vals {
		putScalar(b[i*sz:], sz, x.bits)
	}
	return Value{typ: TypeArray, elem: elem, arr: b}
}

func putScalar(b []byte, size int, bits uint64) {
	switch size {
	case 1:
		b[0] = byte(bits)
	case 2:
		binary.LittleEndian.PutUint16(b, uint16(bits))
	case 4:
		binary.LittleEndian.PutUint32(b, uint32(bits))
	case 8:
		binary.LittleEndian.PutUint64(b, bits)
	}
}

// Scalar accessors.

// String returns the string of a string value.
func (v Value) String() (string, bool) {
	if v.typ != TypeString {
		return "", false
	}
	return v.str, true
}

// Uint returns an integer value of any width or signedness that is ≥ 0.
func (v Value) Uint() (uint64, bool) {
	switch {
	case v.typ.isUnsigned():
		return v.bits, true
	case v.typ.isSigned():
		if n := v.signed(); n >= 0 {
			return uint64(n), true
		}
	}
	return 0, false
}

// Int returns an integer value of any width or signedness that fits int64.
func (v Value) Int() (int64, bool) {
	switch {
	case v.typ.isSigned():
		return v.signed(), true
	case v.typ.isUnsigned():
		if v.bits <= math.MaxInt64 {
			return int64(v.bits), true
		}
	}
	return 0, false
}

// Float returns any numeric value (integer or float) as a float64.
func (v Value) Float() (float64, bool) {
	switch {
	case v.typ == TypeFloat32:
		return float64(math.Float32frombits(uint32(v.bits))), true
	case v.typ == TypeFloat64:
		return math.Float64frombits(v.bits), true
	case v.typ.isSigned():
		return float64(v.signed()), true
	case v.typ.isUnsigned():
		return float64(v.bits), true
	}
	return 0, false
}

// Bool returns the value of a bool.
func (v Value) Bool() (bool, bool) {
	if v.typ != TypeBool {
		return false, false
	}
	return v.bits != 0, true
}

func (v Value) signed() int64 {
	switch v.typ {
	case TypeInt8:
		return int64(int8(v.bits))
	case TypeInt16:
		return int64(int16(v.bits))
	case TypeInt32:
		return int64(int32(v.bits))
	}
	return int64(v.bits)
}

// Array accessors.

// Strings returns a copy of a string array.
func (v Value) Strings() ([]string, error) {
	if v.typ != TypeArray || v.elem != TypeString {
		return nil, fmt.Errorf("is %s, not an array of string", v.describe())
	}
	return append([]string(nil), v.arr.([]string)...), nil
}

// Float32s returns a numeric array (of any scalar numeric element type) as
// float32s.
func (v Value) Float32s() ([]float32, error) {
	if v.typ != TypeArray || v.elem.size() == 0 || v.elem == TypeBool {
		return nil, fmt.Errorf("is %s, not a numeric array", v.describe())
	}
	n := v.Len()
	out := make([]float32, n)
	if v.elem == TypeFloat32 {
		b := v.arr.([]byte)
		for i := range out {
			out[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
		}
		return out, nil
	}
	for i := range out {
		f, _ := v.Index(i).Float()
		out[i] = float32(f)
	}
	return out, nil
}

// Int32s returns an integer array as int32s. Any integer element type is
// accepted as long as every element fits; the error names the first that
// does not.
func (v Value) Int32s() ([]int32, error) {
	if v.typ != TypeArray || !(v.elem.isSigned() || v.elem.isUnsigned()) {
		return nil, fmt.Errorf("is %s, not an integer array", v.describe())
	}
	n := v.Len()
	out := make([]int32, n)
	for i := range out {
		x, ok := v.Index(i).Int()
		if !ok || x < math.MinInt32 || x > math.MaxInt32 {
			return nil, fmt.Errorf("has element %d = %s, which does not fit int32", i, v.Index(i).Text(0))
		}
		out[i] = int32(x)
	}
	return out, nil
}

func (v Value) describe() string {
	if v.typ == TypeArray {
		return "an array of " + v.elem.String()
	}
	return "a " + v.typ.String()
}

// Equal reports whether v and o have the same type and contents (floats
// are compared bit for bit, so NaN equals the same NaN).
func (v Value) Equal(o Value) bool {
	if v.typ != o.typ {
		return false
	}
	switch v.typ {
	case TypeString:
		return v.str == o.str
	case TypeArray:
		if v.elem != o.elem || v.Len() != o.Len() {
			return false
		}
		switch a := v.arr.(type) {
		case []byte:
			b, _ := o.arr.([]byte)
			return bytes.Equal(a, b)
		case []string:
			b, _ := o.arr.([]string)
			for i := range a {
				if a[i] != b[i] {
					return false
				}
			}
		case []Value:
			b, _ := o.arr.([]Value)
			for i := range a {
				if !a[i].Equal(b[i]) {
					return false
				}
			}
		}
		return true
	}
	return v.bits == o.bits
}

// Text renders v for people: numbers in Go syntax, strings quoted, arrays
// as [a, b, ...] with at most maxArray elements shown per array (all of
// them if maxArray < 0) and a count of the rest.
func (v Value) Text(maxArray int) string {
	var sb strings.Builder
	v.text(&sb, maxArray, -1)
	return sb.String()
}

// Format implements fmt.Formatter: %v prints Text(16); a precision sets
// the array limit (%.4v), and %+v prints every element.
func (v Value) Format(s fmt.State, verb rune) {
	limit := 16
	if p, ok := s.Precision(); ok {
		limit = p
	}
	if s.Flag('+') {
		limit = -1
	}
	fmt.Fprint(s, v.Text(limit))
}

// text writes v; maxString < 0 prints strings in full, otherwise strings
// longer than maxString bytes are cut and their length noted.
func (v Value) text(sb *strings.Builder, maxArray, maxString int) {
	switch v.typ {
	case TypeString:
		s := v.str
		if maxString >= 0 && len(s) > maxString {
			cut := maxString
			for cut > 0 && cut < len(s) && s[cut]&0xc0 == 0x80 {
				cut-- // don't split a UTF-8 sequence
			}
			sb.WriteString(strconv.Quote(s[:cut]))
			fmt.Fprintf(sb, "…(%d bytes)", len(s))
			return
		}
		sb.WriteString(strconv.Quote(s))
	case TypeArray:
		n := v.Len()
		shown := n
		if maxArray >= 0 && n > maxArray {
			shown = maxArray
		}
		sb.WriteByte('[')
		for i := 0; i < shown; i++ {
			if i > 0 {
				sb.WriteString(", ")
			}
			v.Index(i).text(sb, maxArray, maxString)
		}
		if shown < n {
			if shown > 0 {
				sb.WriteString(", ")
			}
			fmt.Fprintf(sb, "... %d more", n-shown)
		}
		sb.WriteByte(']')
	case TypeBool:
		sb.WriteString(strconv.FormatBool(v.bits != 0))
	case TypeFloat32:
		sb.WriteString(strconv.FormatFloat(float64(math.Float32frombits(uint32(v.bits))), 'g', -1, 32))
	case TypeFloat64:
		sb.WriteString(strconv.FormatFloat(math.Float64frombits(v.bits), 'g', -1, 64))
	default:
		if v.typ.isSigned() {
			sb.WriteString(strconv.FormatInt(v.signed(), 10))
		} else {
			sb.WriteString(strconv.FormatUint(v.bits, 10))
		}
	}
}

// TypeText describes v's type the way Dump prints it: "uint32", or
// "[string; 512]" for arrays, nesting for arrays of arrays.
func (v Value) TypeText() string {
	if v.typ != TypeArray {
		return v.typ.String()
	}
	if v.elem == TypeArray && v.Len() > 0 {
		return fmt.Sprintf("[%s; %d]", v.Index(0).TypeText(), v.Len())
	}
	return fmt.Sprintf("[%s; %d]", v.elem, v.Len())
}
