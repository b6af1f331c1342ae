package cpu

import "github.com/stokehq/stoke/models/dtype"

// Q4_0 tiles. MatMul's eight-input Q4_0 kernel decodes a weight quad once
// for eight inputs and reads the inputs' activations, 192 bytes a quad
// each, from memory for every row. For a long row those activations (8 ×
// 6 bytes per column: 393 KiB at 8192 columns) do not stay in L1, and
// each row streams them again from L2 or beyond. The tiles cut the rows
// of a chunk into slices of q4TileQuads quads (24 KiB of activations for
// eight inputs, which L1 holds) and pass every row of the tile over one
// slice before the next. The row's eight per-input accumulators wait in
// memory between slices (dotQ4_0Q8_0Acc loads and stores them), and take
// the products of every quad in the one-call kernel's order, so a
// result is still bit for bit what MatVec gives: the slices only choose
// when a quad is computed, not in which order an accumulator takes it.

const (
	// q4TileQuads is the quads of a slice: 8·16·192 B = 24 KiB of
	// activations.
	q4TileQuads = 16
	// q4TileRows is the rows of a tile: their accumulators, 8 KiB, live
	// on the stack.
	q4TileRows = 32
)

// useQ4Tile lets MatMul use the tiles for groups of eight Q4_0 inputs.
// Tests and benchmarks turn it off (setQ4Tile) to compare; it is written
// only between calls, like useAsm.
var useQ4Tile = true

// setQ4Tile sets useQ4Tile and returns a function that restores it.
func setQ4Tile(on bool) (restore func()) {
	old := useQ4Tile
	useQ4Tile = on
	return func() { useQ4Tile = old }
}

// q4Accs are the accumulators of one row for eight inputs: input j's
// eight lanes at [8j, 8j+8).
type q4Accs [64]float32

// q4Tiled reports whether MatMul computes group g of inputs, for weights
// of type t, in tiles: eight Q4_0 inputs whose rows span more than one
// slice. (A row of one slice gains nothing from tiles, and the
// accumulators' round trip through memory cost 4–8% at 2048 columns.)
func q4Tiled(t dtype.Type, g *qBatch) bool {
	return useQ4Tile && t == dtype.Q4_0 && g.n == maxMulti && g.nb > 4*q4TileQuads
}

// matMulChunk is MatMul's chunk, in rows of rb bytes, for n inputs of
// cols columns that take passes passes over each row (rows rows, threads
// threads) against weights of type t:
//
//   - where the inputs go in Q4_0 tiles, rowsPerChunk(rb) and at least
//     q4TileRows, so that a slice of activations brought into L1 serves
//     a whole tile of rows;
//   - where the inputs take one pass (passes: one group for one kernel,
//     or one input), MatVec's long chunks (mvChunkRows): nothing is read
//     twice, and long runs let the hardware prefetchers stream the rows
//     (the aggregate decode rate of 4 and 8 concurrent streams on the 1B
//     model rose 10–20%, TestStreamsTable on the 2-core development
//     machine);
//   - otherwise rowsPerChunk(rb), which stays in cache while every group
//     of inputs takes its pass.
func matMulChunk(t dtype.Type, rb, cols, n, passes, rows, threads int) int {
	c := rowsPerChunk(rb)
	if useQ4Tile && useMulti && t == dtype.Q4_0 && n >= maxMulti && cols > 32*4*q4TileQuads {
		return max(c, q4TileRows)
	}
	if passes == 1 {
		c = max(c, mvChunkRows(rb, rows, threads))
	}
	return c
}

// q4Tiles sets dst[(i0+j)·rows + r] for the eight inputs j of g (input i0
// the first) and rows r in [lo, hi) of m's Q4_0 weights: dotQ4_0Q8_0Multi's
// results, computed tile by tile.
func (m *matMulTask) q4Tiles(g *qBatch, i0, lo, hi int) {
	var accs [q4TileRows]q4Accs
	nb, rb := g.nb, m.rb
	for r0 := lo; r0 < hi; r0 += q4TileRows {
		r1 := min(r0+q4TileRows, hi)
		acc := accs[:r1-r0]
		clear(acc)
		for b0 := 0; b0 < nb; b0 += 4 * q4TileQuads {
			n := min(4*q4TileQuads, nb-b0)
			for r := r0; r < r1; r++ {
				q4TilePrefetch(m.w, r, hi, rb, b0, n, nb)
				if r+1 < r1 && dotQ4_0Q8_0Acc2((*[2]q4Accs)(acc[r-r0:]), m.w[r*rb+18*b0:(r+1)*rb+18*(b0+n)], rb, g, b0, n) {
					q4TilePrefetch(m.w, r+1, hi, rb, b0, n, nb)
					r++ // two rows at once (vnni_amd64.go)
					continue
				}
				w := m.w[r*rb+18*b0 : r*rb+18*(b0+n)]
				dotQ4_0Q8_0Acc(&acc[r-r0], w, g, b0, n)
			}
		}
		for r := r0; r < r1; r++ {
			a := &acc[r-r0]
			for j := range maxMulti {
				m.dst[(i0+j)*m.rows+r] = hsum8((*[8]float32)(a[8*j:]))
			}
		}
	}
}

// q4TilePrefetch prefetches, as row r of a tile takes its slice of blocks
// [b0, b0+n), the bytes that row will read next: its next slice, or, in
// the tile's last slice, the first slice of the row q4TileRows on (the
// next tile's, when it is below hi). A tile reads its rows a slice at a
// time, as many streams as rows, which the hardware prefetchers do not
// follow (see matMulAhead).
func q4TilePrefetch(w []byte, r, hi, rb, b0, n, nb int) {
	if b0+n < nb {
		next := min(n, nb-b0-n)
		prefetch(w[r*rb+18*(b0+n) : r*rb+18*(b0+n+next)])
		return
	}
	if nr := r + q4TileRows; nr < hi {
		prefetch(w[nr*rb : nr*rb+18*min(4*q4TileQuads, nb)])
	}
}

// dotQ4_0Q8_0AccGeneric adds to acc the quads of blocks [b0, b0+nb) of
// each input of vs (eight, prepared for Q4_0) against the Q4_0 weights w
// of those blocks (b0 a multiple of 4): dotQ4_0Q8_0Generic's lane sums,
// each into its input's accumulators in the row kernel's order, without
// the final reduction.
func dotQ4_0Q8_0AccGeneric(acc *q4Accs, w []byte, vs []*QVec, b0, nb int) {
	w = w[:18*nb]
	var q [32]float32
	lut := &q40Pairs
	var ys [maxMulti][]float32 // the inputs' quants as float32
	for k, v := range vs {
		ys[k&(maxMulti-1)] = v.ys()
	}
	for i := 0; i < nb; i++ {
		wb := (*[18]byte)(w[18*i:])
		for j, b := range (*[16]byte)(wb[2:]) {
			p := &lut[b]
			q[j], q[16+j] = p[0], p[1]
		}
		dw := f16at(wb[0:])
		l := q4Lane[(b0+i)&3]
		for k, v := range vs {
			y := (*[32]float32)(ys[k&(maxMulti-1)][32*(b0+i):])
			var s0, s1 float32
			for e := 0; e < 4; e++ {
				s0 += q[e]*y[e] + q[8+e]*y[8+e] + q[16+e]*y[16+e] + q[24+e]*y[24+e]
				s1 += q[4+e]*y[4+e] + q[12+e]*y[12+e] + q[20+e]*y[20+e] + q[28+e]*y[28+e]
			}
			d := dw * v.d[b0+i]
			a := (*[8]float32)(acc[8*(k&(maxMulti-1)):])
			a[l&7] += float32(s0 * d)
			a[(l+1)&7] += float32(s1 * d)
		}
	}
}
