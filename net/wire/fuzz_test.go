package wire_test

import (
	"bytes"
	"testing"

	"github.com/stokehq/stoke/net/wire"
)

// FuzzDecode: any bytes either fail to decode or decode to a message
// whose encoding decodes to the same encoding (read → write → read).
func FuzzDecode(f *testing.F) {
	for _, m := range samples() {
		b, err := wire.Encode(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{byte(wire.TypeTokens), 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, n, err := wire.DecodeFrame(b)
		if err != nil {
			if m != nil {
				t.Fatal("a message with an error")
			}
			return
		}
		if n > len(b) {
			t.Fatalf("used %d of %d bytes", n, len(b))
		}
		e1, err := wire.Encode(m)
		if err != nil {
			t.Fatalf("a decoded %s does not encode: %v", m.Type(), err)
		}
		m2, n2, err := wire.DecodeFrame(e1)
		if err != nil || n2 != len(e1) {
			t.Fatalf("re-encoded %s does not decode: %v", m.Type(), err)
		}
		e2, err := wire.Encode(m2)
		if err != nil || !bytes.Equal(e1, e2) {
			t.Fatalf("%s does not round-trip: %x vs %x", m.Type(), e1, e2)
		}
		if r, err := wire.Read(bytes.NewReader(e1)); err != nil || r.Type() != m.Type() {
			t.Fatalf("Read disagrees with DecodeFrame: %v", err)
		}
	})
}
