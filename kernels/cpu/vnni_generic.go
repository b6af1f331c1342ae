//go:build !amd64 || noasm || !gc

package cpu

import "github.com/stokehq/stoke/models/dtype"

// Without the assembly there are no two-row kernels (vnni_amd64.go).

func qdotMulti2(t dtype.Type, dst []float32, w []byte, rb int, b *qBatch) bool { return false }

func multiPrefetches(t dtype.Type, b *qBatch) bool { return false }

func dotQ4_0Q8_0Acc2(acc *[2]q4Accs, w []byte, rb int, b *qBatch, b0, nb int) bool {
	return false
}
