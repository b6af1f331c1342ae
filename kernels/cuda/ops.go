package cuda

import (
	"fmt"
	"math"

	"github.com/stokehq/stoke/kernels"
	"github.com/stokehq/stoke/models/dtype"
)

// checker validates one op's arguments on the caller's goroutine; the
// first problem becomes the error the next Sync returns, and the op is
// not launched.
type checker struct {
	b   *Backend
	op  string
	err error
}

func (c *checker) failf(format string, a ...any) {
	if c.err == nil {
		c.err = fmt.Errorf("cuda: %s: %s", c.op, fmt.Sprintf(format, a...))
	}
}

// buf returns x's device address after checking that it is this
// backend's and holds at least need bytes. A nil x gives 0 when need is 0.
func (c *checker) buf(x kernels.Buffer, what string, need int64) uint64 {
	if x == nil {
		if need > 0 {
			c.failf("%s is nil", what)
		}
		return 0
	}
	d, ok := x.(*buffer)
	if !ok || d.b != c.b {
		c.failf("%s is not a buffer of this backend", what)
		return 0
	}
	if need < 0 || d.n < need {
		c.failf("%s holds %d bytes, needs %d", what, d.n, need)
		return 0
	}
	return d.ptr
}

// nonneg checks counts.
func (c *checker) nonneg(what string, v int) {
	if v < 0 {
		c.failf("%s is %d", what, v)
	}
}

// rowBytes returns the bytes of a row of cols elements of a mat-vec type.
func (c *checker) rowBytes(t dtype.Type, cols int) (int64, matKernels) {
	mk, ok := weightKernels[t]
	if !ok {
		c.failf("weights of type %s are not supported", t)
		return 0, mk
	}
	if cols < 0 {
		c.failf("%d columns", cols)
		return 0, mk
	}
	rb, err := t.RowBytes(uint64(cols))
	if err != nil {
		c.failf("%v", err)
		return 0, mk
	}
	if cols > math.MaxInt32/2 {
		c.failf("%d columns", cols)
	}
	return int64(rb), mk
}

// failed reports (and records) a failed check.
func (c *checker) failed() bool {
	if c.err != nil {
		c.b.fail(c.err)
		return true
	}
	return false
}

func grid1(n int) [3]uint32  { return [3]uint32{uint32(max(n, 1)), 1, 1} }
func block1(n int) [3]uint32 { return [3]uint32{uint32(n), 1, 1} }

// launch queues kernel k; args are the parameter values in order (32-bit
// ones in the low half).
func (b *Backend) launch(k kernelID, grid, block [3]uint32, args ...uint64) {
	c := cmd{kind: cmdLaunch, k: k, grid: grid, block: block, nargs: uint8(len(args))}
	copy(c.args[:], args)
	b.send(c)
}

func i32(v int) uint64     { return uint64(uint32(int32(v))) }
func f32(v float32) uint64 { return uint64(math.Float32bits(v)) }

// elementwise grid: enough blocks of 256 to cover n, at most 32 per SM
// (the kernels stride over the rest).
func (b *Backend) ewGrid(n int64) [3]uint32 {
	return grid1(int(min((n+255)/256, int64(max(b.info.sms, 1)*32))))
}

// matFlags returns the mat-vec flags for weights at w with rows of rb
// bytes and inputs at x of cols floats.
func matFlags(w uint64, rb int64, x uint64, cols, n int) uint64 {
	var f uint64
	if w%16 == 0 && rb%16 == 0 {
		f |= flagVec
	}
	if x%16 == 0 && (n == 1 || cols%4 == 0) {
		f |= flagXAlign
	}
	return f
}

// MatMul implements kernels.Backend. One input runs the GEMV kernel (a
// warp per row); more run the 8-input kernel on groups of up to 8 inputs,
// each group reading the weights once.
func (b *Backend) MatMul(dst, w kernels.Buffer, t dtype.Type, rows, cols int, x kernels.Buffer, n int) {
	c := checker{b: b, op: "MatMul"}
	rb, mk := c.rowBytes(t, cols)
	c.nonneg("rows", rows)
	c.nonneg("n", n)
	wp := c.buf(w, "w", int64(rows)*rb)
	dp := c.buf(dst, "dst", 4*int64(n)*int64(rows))
	xp := c.buf(x, "x", 4*int64(n)*int64(cols))
	if c.failed() || rows == 0 || n == 0 {
		return
	}
	if cols == 0 {
		b.send(cmd{kind: cmdMemset, dptr: dp, n: 4 * int64(n) * int64(rows)})
		return
	}
	grid := grid1((rows + matWarps - 1) / matWarps)
	block := block1(matWarps * 32)
	if n == 1 {
		b.launch(mk.gemv1, grid, block, dp, wp, uint64(rb), i32(cols), 0, i32(rows), uint64(rows), xp, matFlags(wp, rb, xp, cols, 1), b.errDev)
		return
	}
	for i := 0; i < n; i += 8 {
		nx := min(8, n-i)
		d := dp + 4*uint64(i)*uint64(rows)
		xi := xp + 4*uint64(i)*uint64(cols)
		b.launch(mk.gemv8, grid, block, d, uint64(rows), wp, uint64(rb), i32(cols), i32(rows), xi, i32(nx), matFlags(wp, rb, xi, cols, nx), b.errDev)
	}
}

// MatVecRows implements kernels.Backend: the GEMV kernel over the listed
// rows. An index outside w makes its output 0 and the next Sync fail.
func (b *Backend) MatVecRows(dst, w kernels.Buffer, t dtype.Type, cols int, idx kernels.Buffer, nIdx int, x kernels.Buffer) {
	c := checker{b: b, op: "MatVecRows"}
	rb, mk := c.rowBytes(t, cols)
	c.nonneg("nIdx", nIdx)
	wp := c.buf(w, "w", 0)
	ip := c.buf(idx, "idx", 4*int64(nIdx))
	dp := c.buf(dst, "dst", 4*int64(nIdx))
	xp := c.buf(x, "x", 4*int64(cols))
	if c.failed() || nIdx == 0 {
		return
	}
	if cols == 0 {
		b.send(cmd{kind: cmdMemset, dptr: dp, n: 4 * int64(nIdx)})
		return
	}
	nrw := w.Len() / rb
	b.launch(mk.gemv1, grid1((nIdx+matWarps-1)/matWarps), block1(matWarps*32),
		dp, wp, uint64(rb), i32(cols), ip, i32(nIdx), uint64(nrw), xp, matFlags(wp, rb, xp, cols, 1), b.errDev)
}

// AxpyRows implements kernels.Backend. The columns are cut in tiles of
// axpyCols and the rows in splits, enough blocks to fill the device (about
// four per SM) while a split keeps at least one row per warp; each split's
// partial sums go to scratch and the last block of a tile adds them in
// split order (deterministic).
func (b *Backend) AxpyRows(dst, w kernels.Buffer, t dtype.Type, cols int, idx kernels.Buffer, nIdx int, coef kernels.Buffer) {
	c := checker{b: b, op: "AxpyRows"}
	rb, mk := c.rowBytes(t, cols)
	c.nonneg("nIdx", nIdx)
	wp := c.buf(w, "w", 0)
	ip := c.buf(idx, "idx", 4*int64(nIdx))
	cp := c.buf(coef, "coef", 4*int64(nIdx))
	dp := c.buf(dst, "dst", 4*int64(cols))
	tiles := (cols + axpyCols - 1) / axpyCols
	if tiles > maxCounters {
		c.failf("%d columns (at most %d)", cols, maxCounters*axpyCols)
	}
	if c.failed() || cols == 0 {
		return
	}
	nrw := w.Len() / rb
	splits, rps := axpySplits(nIdx, cols, tiles, b.info.sms)
	b.launch(mk.axpy, [3]uint32{uint32(tiles), uint32(splits), 1}, block1(matWarps*32),
		dp, wp, uint64(rb), i32(cols), ip, i32(nIdx), uint64(nrw), cp, i32(rps), matFlags(wp, rb, 0, cols, 1)&flagVec,
		b.scratch, b.counters, b.errDev)
}

// axpySplits returns the number of row splits for AxpyRows and the rows
// per split.
func axpySplits(nIdx, cols, tiles, sms int) (splits, rps int) {
	if nIdx == 0 {
		return 1, 0
	}
	want := (max(sms, 1)*4 + tiles - 1) / tiles
	rps = max((nIdx+want-1)/want, matWarps)
	splits = (nIdx + rps - 1) / rps
	if most := scratchBytes / 4 / cols; splits > most {
		splits = most
		rps = (nIdx + splits - 1) / splits
	}
	return splits, rps
}

// Norm implements kernels.Backend: one block per row.
func (b *Backend) Norm(dst, x, w, bias kernels.Buffer, dim, n int, eps float32, layer bool) {
	c := checker{b: b, op: "Norm"}
	c.nonneg("dim", dim)
	c.nonneg("n", n)
	size := 4 * int64(dim) * int64(n)
	xp := c.buf(x, "x", size)
	dp := c.buf(dst, "dst", size)
	var wp, bp uint64
	if w != nil {
		wp = c.buf(w, "w", 4*int64(dim))
	}
	if layer && bias != nil {
		bp = c.buf(bias, "b", 4*int64(dim))
	}
	if c.failed() || n == 0 || dim == 0 {
		return
	}
	threads := min(256, (dim+31)/32*32)
	if layer {
		b.launch(kLayerNorm, grid1(n), block1(threads), dp, xp, wp, bp, i32(dim), f32(eps))
		return
	}
	b.launch(kRMSNorm, grid1(n), block1(threads), dp, xp, wp, i32(dim), f32(eps))
}

// ropeKey identifies a RoPE configuration whose frequency table is cached.
type ropeKey struct {
	dims, headDim int
	base, scale   float64
	ff            *float32
	nff           int
}

// ropeTable returns the inverse frequencies of cfg, computed as
// cpu.NewRoPE does (f64), cached for the last configuration.
func (b *Backend) ropeTable(cfg *kernels.RoPE) *ropeInv {
	k := ropeKey{dims: cfg.Dims, headDim: cfg.HeadDim, base: cfg.Base, scale: cfg.Scale, nff: len(cfg.FreqFactors)}
	if k.nff > 0 {
		k.ff = &cfg.FreqFactors[0]
	}
	b.ropeMu.Lock()
	defer b.ropeMu.Unlock()
	if b.ropeTab != nil && b.ropeKey == k {
		return b.ropeTab
	}
	scale := cfg.Scale
	if scale == 0 {
		scale = 1
	}
	t := new(ropeInv)
	for i := range cfg.Dims / 2 {
		d := math.Pow(cfg.Base, float64(2*i)/float64(cfg.Dims))
		if cfg.FreqFactors != nil {
			d *= float64(cfg.FreqFactors[i])
		}
		t[i] = scale / d
	}
	b.ropeKey, b.ropeTab = k, t
	return t
}

// Rope implements kernels.Backend.
func (b *Backend) Rope(x kernels.Buffer, cfg *kernels.RoPE, heads, n, pos int) {
	c := checker{b: b, op: "Rope"}
	if cfg == nil {
		c.failf("no RoPE configuration")
		c.failed()
		return
	}
	switch {
	case cfg.Dims < 0 || cfg.Dims%2 != 0 || cfg.Dims > cfg.HeadDim:
		c.failf("rotating %d of %d values per head", cfg.Dims, cfg.HeadDim)
	case cfg.Dims/2 > ropeMax:
		c.failf("%d rotated pairs per head (at most %d)", cfg.Dims/2, ropeMax)
	case !(cfg.Base > 0) || math.IsInf(cfg.Base, 0):
		c.failf("frequency base %g", cfg.Base)
	case cfg.Scale < 0 || math.IsNaN(cfg.Scale) || math.IsInf(cfg.Scale, 0):
		c.failf("position scale %g", cfg.Scale)
	case cfg.FreqFactors != nil && len(cfg.FreqFactors) != cfg.Dims/2:
		c.failf("%d frequency factors for %d pairs", len(cfg.FreqFactors), cfg.Dims/2)
	}
	c.nonneg("heads", heads)
	c.nonneg("n", n)
	c.nonneg("pos", pos)
	xp := c.buf(x, "x", 4*int64(n)*int64(heads)*int64(cfg.HeadDim))
	if c.failed() || n == 0 || heads == 0 || cfg.Dims == 0 {
		return
	}
	half := cfg.Dims / 2
	neox := 0
	if cfg.NeoX {
		neox = 1
	}
	cm := cmd{kind: cmdLaunch, k: kRope, grid: grid1((n*half + 127) / 128), block: block1(128), rope: b.ropeTable(cfg)}
	cm.nargs = uint8(copy(cm.args[:], []uint64{xp, i32(n), i32(heads), i32(cfg.HeadDim), i32(half), i32(neox), i32(pos), 0}))
	b.send(cm)
}

// kvSize returns the bytes per cache value of type t.
func (c *checker) kvSize(t dtype.Type) int64 {
	switch t {
	case dtype.F32:
		return 4
	case dtype.F16:
		return 2
	}
	c.failf("KV cache of type %s (F32 or F16)", t)
	return 0
}

// StoreKV implements kernels.Backend.
func (b *Backend) StoreKV(cache kernels.Buffer, t dtype.Type, width, pos int, src kernels.Buffer, n int) {
	c := checker{b: b, op: "StoreKV"}
	es := c.kvSize(t)
	c.nonneg("width", width)
	c.nonneg("pos", pos)
	c.nonneg("n", n)
	cp := c.buf(cache, "cache", es*int64(pos+n)*int64(width))
	sp := c.buf(src, "src", 4*int64(n)*int64(width))
	if c.failed() || n == 0 || width == 0 {
		return
	}
	total := int64(n) * int64(width)
	k := kStoreKVF32
	if t == dtype.F16 {
		k = kStoreKVF16
	}
	b.launch(k, b.ewGrid(total), block1(256), cp+uint64(es*int64(pos)*int64(width)), sp, uint64(total))
}

// Attention implements kernels.Backend. Decode (few query tokens) splits
// the positions over blocks so that the device is filled; the splits are
// merged in order by the last block of each (token, head).
func (b *Backend) Attention(out, q kernels.Buffer, n, pos int, k, v kernels.Buffer, kvType dtype.Type, heads, kvHeads, headDim int, scale float32) {
	c := checker{b: b, op: "Attention"}
	es := c.kvSize(kvType)
	c.nonneg("n", n)
	c.nonneg("pos", pos)
	if heads <= 0 || kvHeads <= 0 || heads%kvHeads != 0 || headDim <= 0 || headDim > attMaxHead {
		c.failf("%d heads, %d KV heads of %d values (at most %d)", heads, kvHeads, headDim, attMaxHead)
	}
	size := 4 * int64(n) * int64(heads) * int64(headDim)
	qp := c.buf(q, "q", size)
	op := c.buf(out, "out", size)
	kvNeed := es * int64(pos+n) * int64(kvHeads) * int64(headDim)
	kp := c.buf(k, "k", kvNeed)
	vp := c.buf(v, "v", kvNeed)
	if n > 65535 {
		c.failf("%d query tokens (at most 65535 per call)", n)
	}
	if c.failed() || n == 0 {
		return
	}
	splits := attnSplits(n, pos, heads, headDim, b.info.sms)
	kid := kAttnF32
	if kvType == dtype.F16 {
		kid = kAttnF16
	}
	b.launch(kid, [3]uint32{uint32(heads), uint32(n), uint32(splits)}, block1(attWarps*32),
		op, qp, kp, vp, i32(pos), i32(heads), i32(kvHeads), i32(headDim), f32(scale), b.scratch, b.counters)
}

// attnSplits returns how many blocks share one (token, head)'s positions:
// enough to give the device about 8 blocks per SM, each taking at least
// 128 positions, within the scratch and counters.
func attnSplits(n, pos, heads, headDim, sms int) int {
	pairs := n * heads
	want := (max(sms, 1)*8 + pairs - 1) / pairs
	s := min(want, (pos+n+127)/128, 65535)
	if pairs > maxCounters {
		return 1
	}
	s = min(s, scratchBytes/4/(pairs*(headDim+2)))
	return max(s, 1)
}

// AddBias implements kernels.Backend.
func (b *Backend) AddBias(x, bias kernels.Buffer, width, n int) {
	c := checker{b: b, op: "AddBias"}
	c.nonneg("width", width)
	c.nonneg("n", n)
	total := int64(width) * int64(n)
	xp := c.buf(x, "x", 4*total)
	bp := c.buf(bias, "b", 4*int64(width))
	if c.failed() || total == 0 {
		return
	}
	b.launch(kAddBias, b.ewGrid(total), block1(256), xp, bp, i32(width), uint64(total))
}

// AddGather implements kernels.Backend. An index outside src leaves its
// element unchanged and makes the next Sync fail.
func (b *Backend) AddGather(dst, src, idx kernels.Buffer, nIdx int) {
	c := checker{b: b, op: "AddGather"}
	c.nonneg("nIdx", nIdx)
	dp := c.buf(dst, "dst", 4*int64(nIdx))
	sp := c.buf(src, "src", 0)
	ip := c.buf(idx, "idx", 4*int64(nIdx))
	if c.failed() || nIdx == 0 {
		return
	}
	b.launch(kAddGather, b.ewGrid(int64(nIdx)), block1(256), dp, sp, ip, uint64(nIdx), uint64(src.Len()/4), b.errDev)
}

// Add implements kernels.Backend.
func (b *Backend) Add(dst, x kernels.Buffer, n int) {
	c := checker{b: b, op: "Add"}
	c.nonneg("n", n)
	dp := c.buf(dst, "dst", 4*int64(n))
	xp := c.buf(x, "x", 4*int64(n))
	if c.failed() || n == 0 {
		return
	}
	b.launch(kAdd, b.ewGrid(int64(n)), block1(256), dp, xp, uint64(n))
}

// Mul implements kernels.Backend.
func (b *Backend) Mul(dst, x, y kernels.Buffer, n int) {
	c := checker{b: b, op: "Mul"}
	c.nonneg("n", n)
	dp := c.buf(dst, "dst", 4*int64(n))
	xp := c.buf(x, "a", 4*int64(n))
	yp := c.buf(y, "b", 4*int64(n))
	if c.failed() || n == 0 {
		return
	}
	b.launch(kMul, b.ewGrid(int64(n)), block1(256), dp, xp, yp, uint64(n))
}

// Activate implements kernels.Backend.
func (b *Backend) Activate(x kernels.Buffer, n int, act kernels.Act) {
	c := checker{b: b, op: "Activate"}
	c.nonneg("n", n)
	xp := c.buf(x, "x", 4*int64(n))
	var k kernelID
	switch act {
	case kernels.ActNone:
	case kernels.ActSiLU:
		k = kSiLU
	case kernels.ActGELU:
		k = kGELU
	case kernels.ActReLU:
		k = kReLU
	default:
		c.failf("unknown activation %d", act)
	}
	if c.failed() || n == 0 || act == kernels.ActNone {
		return
	}
	b.launch(k, b.ewGrid(int64(n)), block1(256), xp, uint64(n))
}

// Threshold implements kernels.Backend.
func (b *Backend) Threshold(x kernels.Buffer, n int, tau float32) {
	c := checker{b: b, op: "Threshold"}
	c.nonneg("n", n)
	xp := c.buf(x, "x", 4*int64(n))
	if c.failed() || n == 0 {
		return
	}
	b.launch(kThreshold, b.ewGrid(int64(n)), block1(256), xp, uint64(n), f32(tau))
}
