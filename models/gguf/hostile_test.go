package gguf_test

import (
	"strings"
	"testing"

	"github.com/stokehq/stoke/models/dtype"
	"github.com/stokehq/stoke/models/gguf"
)

// TestHostile feeds malformed files to Parse: each must fail with an error
// that names the problem, never panic, and never allocate by a claimed
// count (the huge counts below would exhaust memory if trusted).
func TestHostile(t *testing.T) {
	kv := func(key string, typ gguf.ValueType) *raw {
		r := header(3, 0, 1)
		return r.str(key).u32(uint32(typ))
	}
	oneTensor := func(name string, typ dtype.Type, shape []uint64, offset uint64, dataBytes int) []byte {
		r := header(3, 1, 0).tensorInfo(name, typ, shape, offset)
		return r.data(32, dataBytes).b
	}
	twoTensors := func(off2 uint64, name2 string) []byte {
		r := header(3, 2, 0).
			tensorInfo("a", dtype.F32, []uint64{16}, 0).
			tensorInfo(name2, dtype.F32, []uint64{16}, off2)
		return r.data(32, 128).b
	}
	withAlign := func(v func(r *raw) *raw) []byte {
		r := header(3, 0, 1).str("general.alignment")
		return v(r).b
	}
	nest := func(depth int) []byte {
		r := kv("deep", gguf.TypeArray)
		for range depth - 1 {
			r.u32(uint32(gguf.TypeArray)).u64(1)
		}
		return r.u32(uint32(gguf.TypeUint8)).u64(1).bytes(7).b
	}

	cases := []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "file is 0 bytes, too short"},
		{"short header", []byte("GGUF\x03\x00\x00\x00\x00"), "file is 9 bytes, too short"},
		{"bad magic", append([]byte("GGML"), make([]byte, 20)...), `bad magic "GGML"`},
		{"bad magic short", []byte("lmgg"), `bad magic "lmgg"`},
		{"version 1", header(1, 0, 0).b, "version 1 is obsolete"},
		{"version 0", header(0, 0, 0).b, "unsupported version 0"},
		{"version 4", header(4, 0, 0).b, "unsupported version 4"},
		{"big endian", header(0x03000000, 0, 0).b, "big-endian"},
		{"tensor count limit", header(3, 1<<40, 0).b, "1099511627776 tensors, over the limit"},
		{"kv count limit", header(3, 0, 1<<62).b, "over the limit"},
		{"kv count vs bytes", header(3, 0, 1000).u64(0).b, "1000 key/value pairs and 0 tensors, but only 8 bytes follow"},
		{"tensor count vs bytes", header(3, 100, 0).data(1, 200).b, "100 tensors, but only 200 bytes follow"},
		{"key length huge", header(3, 0, 1).u64(1<<62).data(1, 5).b, "over the limit"},
		{"key past eof", header(3, 0, 1).u64(100).bytes('a', 'b', 'c', 'd', 'e').b, "runs past end of file"},
		{"truncated value type", header(3, 0, 1).str("kkkkk").bytes(1, 0).b, `kv 0 "kkkkk": value type at byte`},
		{"unknown value type", kv("k", 13).bytes(0).b, `kv 0 "k": unknown value type 13`},
		{"truncated u64", kv("k", gguf.TypeUint64).bytes(1, 2, 3, 4, 5).b, "uint64 value at byte"},
		{"bool 2", kv("k", gguf.TypeBool).bytes(2).b, "bool at byte"},
		{"string huge", kv("k", gguf.TypeString).u64(1 << 40).b, "1099511627776 bytes long, over the limit"},
		{"string past eof", kv("k", gguf.TypeString).u64(64).bytes('x').b, "string of 64 bytes at byte"},
		{"array elem type", kv("k", gguf.TypeArray).u32(99).u64(1).b, "unknown element type 99"},
		{"array count limit", kv("k", gguf.TypeArray).u32(uint32(gguf.TypeUint8)).u64(1 << 50).b, "over the limit of"},
		{"array past eof", kv("k", gguf.TypeArray).u32(uint32(gguf.TypeFloat32)).u64(1<<20).bytes(0, 0, 0, 0).b, "array of 1048576 float32"},
		{"string array past eof", kv("k", gguf.TypeArray).u32(uint32(gguf.TypeString)).u64(1 << 20).u64(0).b, "array of 1048576 strings"},
		{"string array element", kv("k", gguf.TypeArray).u32(uint32(gguf.TypeString)).u64(2).str("ok").u64(1 << 30).u64(0).b, "string 1 of array"},
		{"array of arrays past eof", kv("k", gguf.TypeArray).u32(uint32(gguf.TypeArray)).u64(1 << 20).u64(0).b, "array of 1048576 arrays"},
		{"bool array", kv("k", gguf.TypeArray).u32(uint32(gguf.TypeBool)).u64(3).bytes(0, 1, 5).b, "element 2 is 5, not 0 or 1"},
		{"nesting", nest(gguf.MaxArrayDepth + 1), "nested deeper than 8"},
		{"duplicate key", header(3, 0, 2).str("k").u32(uint32(gguf.TypeUint8)).bytes(1).str("k").u32(uint32(gguf.TypeUint8)).bytes(2).b, `duplicate key "k" (kv 0 and kv 1)`},
		{"alignment type", withAlign(func(r *raw) *raw { return r.u32(uint32(gguf.TypeUint64)).u64(32) }), "general.alignment is a uint64, want uint32"},
		{"alignment zero", withAlign(func(r *raw) *raw { return r.u32(uint32(gguf.TypeUint32)).u32(0) }), "general.alignment is 0, want a power of two"},
		{"alignment odd", withAlign(func(r *raw) *raw { return r.u32(uint32(gguf.TypeUint32)).u32(24) }), "general.alignment is 24"},
		{"alignment huge", withAlign(func(r *raw) *raw { return r.u32(uint32(gguf.TypeUint32)).u32(1 << 31) }), "general.alignment is 2147483648"},
		{"tensor name long", oneTensor(strings.Repeat("x", 64), dtype.F32, []uint64{1}, 0, 4), "64 bytes long, over the limit of 63"},
		{"tensor dims", oneTensor("t", dtype.F32, []uint64{1, 1, 1, 1, 1}, 0, 4), `tensor "t": has 5 dimensions, more than ggml's 4`},
		{"tensor negative dim", oneTensor("t", dtype.F32, []uint64{1 << 63}, 0, 4), `tensor "t": dimension 0 is 9223372036854775808, negative`},
		{"tensor type", oneTensor("blk.0.ffn_down.weight", dtype.Type(99), []uint64{32}, 0, 64), `tensor "blk.0.ffn_down.weight": unknown tensor type id 99`},
		{"tensor retired type", oneTensor("t", dtype.Type(4), []uint64{32}, 0, 64), "unknown tensor type id 4"},
		{"shape overflow", oneTensor("t", dtype.F32, []uint64{1 << 32, 1 << 32}, 0, 4), `tensor "t": shape [4294967296 4294967296] has more than 2^63-1 elements`},
		{"size overflow", oneTensor("t", dtype.F32, []uint64{1 << 62}, 0, 4), "overflow"},
		{"block size", oneTensor("blk.0.ffn_down.weight", dtype.Q4_0, []uint64{172, 64}, 0, 4), `tensor "blk.0.ffn_down.weight": ne0 = 172 is not a multiple of the Q4_0 block size 32`},
		{"data past eof", oneTensor("blk.0.ffn_down.weight", dtype.F32, []uint64{64, 2}, 0, 500), `tensor "blk.0.ffn_down.weight": data [96, 608) ends past end of file (596 bytes)`},
		{"offset past eof", oneTensor("t", dtype.F32, []uint64{8}, 1<<20, 64), "ends past end of file"},
		{"offset overflow", oneTensor("t", dtype.F32, []uint64{8}, 1<<64-32, 64), "overflows a 64-bit position"},
		{"offset unaligned", oneTensor("t", dtype.F32, []uint64{8}, 4, 64), `tensor "t": offset 4 is not a multiple of the alignment 32`},
		{"overlap", twoTensors(32, "b"), `tensors "a" [96, 160) and "b" [128, 192) overlap`},
		{"duplicate tensor", twoTensors(64, "a"), `duplicate tensor name "a" (tensors 0 and 1)`},
		{"truncated tensor info", header(3, 1, 0).str("t").u32(2).u64(4).data(1, 4).b, `tensor "t": dimension 1`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f, err := gguf.Parse(tc.data)
			if err == nil {
				t.Fatalf("parsed: %d KVs, %d tensors", len(f.KVs), len(f.Tensors))
			}
			if !strings.HasPrefix(err.Error(), "gguf: ") || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q\ndoes not mention %q", err, tc.want)
			}
		})
	}
}

// TestLenient checks what Parse accepts although ggml's writer would not
// produce it: gaps between tensors, tensors out of offset order, a file
// without trailing padding, no tensors and no padding at all.
func TestLenient(t *testing.T) {
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"gap and order", header(3, 2, 0).
			tensorInfo("late", dtype.F32, []uint64{4}, 96).
			tensorInfo("early", dtype.F32, []uint64{4}, 0).data(32, 112).b},
		{"no tail padding", header(3, 1, 0).tensorInfo("t", dtype.F32, []uint64{3}, 0).data(32, 12).b},
		{"header only", header(3, 0, 0).b},
		{"zero-size tensors share an offset", header(3, 2, 0).
			tensorInfo("e1", dtype.F32, []uint64{0}, 0).
			tensorInfo("e2", dtype.Q4_0, []uint64{0, 7}, 0).b},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := gguf.Parse(tc.data)
			if err != nil {
				t.Fatal(err)
			}
			w, err := gguf.NewWriterFrom(f)
			if err != nil {
				t.Fatal(err)
			}
			g, err := gguf.Parse(writeBytes(t, w))
			if err != nil {
				t.Fatal(err)
			}
			sameContent(t, f, g)
		})
	}
}
