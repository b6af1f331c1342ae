package offload

import (
	"math"
	"runtime"
	"sync"
	"time"
)

// LayerTime is one layer's share of a token in the roofline model.
type LayerTime struct {
	DeviceBytes, CPUBytes float64 // expected bytes read per token
	Device, CPU           float64 // seconds: bytes / bandwidth
}

// Estimate is the roofline model of a plan: what decoding one token reads
// from each memory and how long that takes at the given bandwidths. It is
// a model, not a measurement.
type Estimate struct {
	Layers                []LayerTime
	HeadDevice, HeadCPU   float64 // seconds for the output norm and head
	DeviceBytes, CPUBytes float64 // expected bytes read per token, all layers and head
	Seconds               float64 // per token
	TokensPerSec          float64
}

// Roofline predicts decode speed of plan p for d with cpuBW and devBW
// bytes/s of read bandwidth. Decoding reads every weight it uses once, so
// per token and layer:
//
//	device = attention + FFN-fixed (+ predictor) bytes if the layer's attention is on the device
//	         + Σ_{i hot} f_i · NeuronBytes
//	cpu    = the same tensors if not
//	         + Σ_{i cold} f_i · NeuronBytes
//	time   = max(device / devBW, cpu / cpuBW)        the halves overlap
//
// summed over layers, plus the output head (norm and matrix) on whichever
// side holds it. f_i is the neuron's firing frequency (unknown: the mean
// of the known layers, or 1: dense). ModeCPU and ModeHybrid are sparse
// (a predictor picks the active neurons, and its weights are read every
// token); ModeLayerSplit is dense, as llama.cpp's -ngl: every neuron of
// every layer is read. The model leaves out KV cache reads (they grow with
// the position), compute, launch and synchronisation overheads, and the
// activations crossing the bus; it is an upper bound on speed.
func Roofline(d *Desc, p *Plan, cpuBW, devBW float64) Estimate {
	fs := freqs(d)
	e := Estimate{Layers: make([]LayerTime, len(d.Layers))}
	sparse := p.Mode != ModeLayerSplit
	for l := range d.Layers {
		ld, lp, lt := &d.Layers[l], &p.Layers[l], &e.Layers[l]
		attn := float64(rawBytes(ld.Attn) + rawBytes(ld.FFNFixed))
		if lp.Attn {
			lt.DeviceBytes += attn
		} else {
			lt.CPUBytes += attn
		}
		nb := float64(ld.NeuronBytes())
		if sparse {
			pred := float64(rawBytes(ld.Predictor))
			if lp.Predictor {
				lt.DeviceBytes += pred
			} else {
				lt.CPUBytes += pred
			}
			var hot, all float64
			for _, i := range lp.Hot {
				hot += fs[l][i]
			}
			for _, f := range fs[l] {
				all += f
			}
			lt.DeviceBytes += hot * nb
			lt.CPUBytes += math.Max(all-hot, 0) * nb
		} else {
			lt.DeviceBytes += float64(len(lp.Hot)) * nb
			lt.CPUBytes += float64(d.FFN-len(lp.Hot)) * nb
		}
		lt.Device, lt.CPU = seconds(lt.DeviceBytes, devBW), seconds(lt.CPUBytes, cpuBW)
		e.DeviceBytes += lt.DeviceBytes
		e.CPUBytes += lt.CPUBytes
		e.Seconds += math.Max(lt.Device, lt.CPU)
	}
	head := float64(d.OutputBytes + d.OutNorm)
	if p.Output {
		e.HeadDevice = seconds(head, devBW)
		e.DeviceBytes += head
	} else {
		e.HeadCPU = seconds(head, cpuBW)
		e.CPUBytes += head
	}
	e.Seconds += e.HeadDevice + e.HeadCPU
	if e.Seconds > 0 {
		e.TokensPerSec = 1 / e.Seconds
	}
	return e
}

// seconds is bytes / bandwidth, +Inf when bytes must be read from a
// memory of no bandwidth.
func seconds(bytes, bw float64) float64 {
	switch {
	case bytes <= 0:
		return 0
	case bw <= 0:
		return math.Inf(1)
	}
	return bytes / bw
}

// MeasureReadBandwidth measures this machine's DRAM read bandwidth in
// bytes/s: every core sums its share of a size-byte buffer (make it well
// beyond the last-level cache: 256 MiB is plenty), best of passes passes.
// It allocates and touches the buffer first, so it takes a fraction of a
// second per pass; the garbage collector reclaims the buffer afterwards.
func MeasureReadBandwidth(size int64, passes int) float64 {
	threads := runtime.GOMAXPROCS(0)
	n := int(size / 8)
	if n < threads*64 || passes < 1 {
		return 0
	}
	buf := make([]uint64, n)
	chunk := (n + threads - 1) / threads
	run := func(f func(x []uint64, w int)) {
		var wg sync.WaitGroup
		for w := range threads {
			lo, hi := w*chunk, min((w+1)*chunk, n)
			if lo >= hi {
				break
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				f(buf[lo:hi], w)
			}()
		}
		wg.Wait()
	}
	run(func(x []uint64, _ int) { // touch every page from the core that reads it
		for i := range x {
			x[i] = uint64(i)
		}
	})
	sums := make([]uint64, threads*8) // one cache line per worker
	best := 0.0
	for range passes {
		t0 := time.Now()
		run(func(x []uint64, w int) {
			var a, b, c, d uint64
			i := 0
			for ; i+4 <= len(x); i += 4 {
				v := x[i : i+4 : i+4]
				a += v[0]
				b += v[1]
				c += v[2]
				d += v[3]
			}
			for ; i < len(x); i++ {
				a += x[i]
			}
			sums[w*8] += a + b + c + d
		})
		if dt := time.Since(t0).Seconds(); dt > 0 {
			best = max(best, float64(n*8)/dt)
		}
	}
	runtime.KeepAlive(sums)
	return best
}
