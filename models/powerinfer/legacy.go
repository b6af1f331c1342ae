package powerinfer

import (
	"encoding/binary"
	"errors"

	"github.com/stokehq/stoke/models/dtype"
)

// PowerInfer's ggml predates the IQ quantization types, so its integer
// tensor types keep their first numbers: I8 16, I16 17, I32 18 (its
// gguf-py: GGMLQuantizationType.I32 = 18). Today's ggml, and models/dtype,
// give 16…18 to IQ2_XXS, IQ2_XS, IQ3_XXS and number the integers 24…26.
// A split file carries nothing but I32 tensors, so the reader maps the old
// ids to the new in the header before models/gguf parses it, and the
// writer maps them back so PowerInfer can load what Stoke writes.
var legacyToModern = map[uint32]dtype.Type{16: dtype.I8, 17: dtype.I16, 18: dtype.I32}

var modernToLegacy = map[dtype.Type]uint32{dtype.I8: 16, dtype.I16: 17, dtype.I32: 18}

// GGUF value type ids and the size of each fixed-size one.
const (
	ggufString   = 8
	ggufArray    = 9
	maxNesting   = 4 // deeper arrays are refused here and by models/gguf
	headerLength = 4 + 4 + 8 + 8
)

var fixedSize = map[uint32]uint64{0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}

var errHeader = errors.New("powerinfer: malformed GGUF header")

// header walks a GGUF header only as far as it must to find each tensor's
// type field. Every length is checked against the bytes left before it is
// used; models/gguf validates the rest afterwards.
type header struct {
	b   []byte
	off uint64
}

func (h *header) left() uint64 { return uint64(len(h.b)) - h.off }

func (h *header) skip(n uint64) error {
	if n > h.left() {
		return errHeader
	}
	h.off += n
	return nil
}

func (h *header) u32() (uint32, error) {
	if h.left() < 4 {
		return 0, errHeader
	}
	v := binary.LittleEndian.Uint32(h.b[h.off:])
	h.off += 4
	return v, nil
}

func (h *header) u64() (uint64, error) {
	if h.left() < 8 {
		return 0, errHeader
	}
	v := binary.LittleEndian.Uint64(h.b[h.off:])
	h.off += 8
	return v, nil
}

func (h *header) str() error {
	n, err := h.u64()
	if err != nil {
		return err
	}
	return h.skip(n)
}

func (h *header) value(typ uint32, depth int) error {
	if size, ok := fixedSize[typ]; ok {
		return h.skip(size)
	}
	switch typ {
	case ggufString:
		return h.str()
	case ggufArray:
		if depth >= maxNesting {
			return errHeader
		}
		elem, err := h.u32()
		if err != nil {
			return err
		}
		n, err := h.u64()
		if err != nil {
			return err
		}
		if size, ok := fixedSize[elem]; ok {
			if n > h.left()/size {
				return errHeader
			}
			return h.skip(n * size)
		}
		if n > h.left()/8 { // every remaining element takes at least 8 bytes
			return errHeader
		}
		for range n {
			if err := h.value(elem, depth+1); err != nil {
				return err
			}
		}
		return nil
	}
	return errHeader
}

// typeOffsets returns the byte offset of every tensor's type field in the
// GGUF file b.
func typeOffsets(b []byte) ([]uint64, error) {
	h := &header{b: b}
	if err := h.skip(8); err != nil { // magic, version
		return nil, err
	}
	nt, err := h.u64()
	if err != nil {
		return nil, err
	}
	nkv, err := h.u64()
	if err != nil {
		return nil, err
	}
	if nkv > h.left()/(8+4+1) || nt > h.left()/(8+4+4+8) {
		return nil, errHeader
	}
	for range nkv {
		if err := h.str(); err != nil {
			return nil, err
		}
		typ, err := h.u32()
		if err != nil {
			return nil, err
		}
		if err := h.value(typ, 0); err != nil {
			return nil, err
		}
	}
	offs := make([]uint64, 0, nt)
	for range nt {
		if err := h.str(); err != nil {
			return nil, err
		}
		nd, err := h.u32()
		if err != nil {
			return nil, err
		}
		if err := h.skip(8 * uint64(nd)); err != nil {
			return nil, err
		}
		offs = append(offs, h.off)
		if err := h.skip(4 + 8); err != nil { // type, offset
			return nil, err
		}
	}
	return offs, nil
}

// retype returns a copy of b with every tensor type id found in m
// replaced by its image.
func retype[K, V ~uint32](b []byte, m map[K]V) ([]byte, error) {
	offs, err := typeOffsets(b)
	if err != nil {
		return nil, err
	}
	out := append([]byte(nil), b...)
	for _, o := range offs {
		if v, ok := m[K(binary.LittleEndian.Uint32(out[o:]))]; ok {
			binary.LittleEndian.PutUint32(out[o:], uint32(v))
		}
	}
	return out, nil
}
