package bench

import (
	"fmt"
	"image/color"
	"math"
	"path/filepath"
	"strconv"

	"github.com/stokehq/stoke/offload"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// Plot draws decode tokens/s against the VRAM budget, one solid line per
// mode (points at the median, bars from the slowest to the fastest run),
// each mode's roofline bound dashed in the same colour, and llama-bench's
// line when the report has one. Host-only modes, which ignore the budget,
// are horizontal lines. The format follows path's extension (.png, .svg,
// .pdf).
func (r *SweepReport) Plot(path string) error {
	p := plot.New()
	pv := &r.Provenance
	load := ""
	if mc := &pv.Machine; mc.LoadBefore >= 0 && mc.LoadAfter >= 0 && (mc.LoadBefore > 0 || mc.LoadAfter > 0) {
		load = fmt.Sprintf(", load avg %.1f→%.1f", mc.LoadBefore, mc.LoadAfter)
	}
	p.Title.Text = fmt.Sprintf("Stoke decode (tg%d) tokens/s vs VRAM budget: median of %d runs, bars min–max\n%s, %s, %s of weights\ndevice: %s · %s, %d cores, %d threads%s\n%s",
		r.Settings.GenLen, r.Settings.Repeat, filepath.Base(pv.Model.Path), pv.Model.DType, offload.FormatBytes(pv.Model.WeightBytes),
		r.deviceLabel(), pv.Machine.CPU, pv.Machine.Cores, r.Settings.Threads, load, r.rooflineLabel())
	p.Title.TextStyle.Font.Size = vg.Points(10)

	xmax := 0.0
	for _, b := range r.Settings.Points {
		xmax = max(xmax, float64(b.Bytes))
	}
	unit, div := "MiB", float64(1<<20)
	if xmax >= 4<<30 {
		unit, div = "GiB", 1<<30
	}
	p.X.Label.Text = fmt.Sprintf("VRAM budget (%s)", unit)
	if b := r.Settings.ShareBase; b > 0 {
		p.X.Label.Text = fmt.Sprintf("VRAM budget (%s; 100%% = %s, the weights a plan can place)", unit, offload.FormatBytes(b))
	}
	p.Y.Label.Text = "decode tokens/s"
	p.X.Tick.Marker, p.Y.Tick.Marker = plainTicks, plainTicks
	xEnd := math.Max(xmax/div, 1e-9)
	p.X.Min, p.X.Max, p.Y.Min = -0.02*xEnd, 1.04*xEnd, 0

	ymax, ymin, measMax := 0.0, math.Inf(1), 0.0
	for i, md := range r.modes() {
		col := plotutil.Color(i)
		var meas, roof plotter.XYs
		var errs plotter.YErrors
		for _, row := range r.Rows {
			if row.Mode != md || row.Status != "ok" {
				continue
			}
			x := float64(row.BudgetBytes) / div
			if row.TG != nil {
				lo, hi := minMax(row.TG.Samples)
				meas = append(meas, plotter.XY{X: x, Y: row.TG.TokPerSec})
				errs = append(errs, struct{ Low, High float64 }{row.TG.TokPerSec - lo, hi - row.TG.TokPerSec})
				ymax, measMax = max(ymax, hi), max(measMax, hi)
				ymin = min(ymin, lo)
			}
			if row.RooflineTPS > 0 {
				roof = append(roof, plotter.XY{X: x, Y: row.RooflineTPS})
			}
		}
		if !md.UsesDevice() { // one measurement, valid at every budget
			meas, roof = flat(meas, xEnd), flat(roof, xEnd)
			if len(errs) > 0 {
				errs = append(errs, errs[0])
			}
		}
		if len(meas) > 0 {
			l, s, err := plotter.NewLinePoints(meas)
			if err != nil {
				return err
			}
			l.Color, l.Width = col, vg.Points(1.5)
			s.Color, s.Shape = col, draw.CircleGlyph{}
			p.Add(l, s)
			p.Legend.Add(string(md)+" (measured)", l, s)
			if len(errs) == len(meas) {
				eb, err := plotter.NewYErrorBars(struct {
					plotter.XYs
					plotter.YErrors
				}{meas, errs})
				if err != nil {
					return err
				}
				eb.Color = col
				p.Add(eb)
			}
		}
		if len(roof) > 0 {
			l, err := plotter.NewLine(roof)
			if err != nil {
				return err
			}
			l.Color, l.Width, l.Dashes = col, vg.Points(1), []vg.Length{vg.Points(5), vg.Points(3)}
			p.Add(l)
			p.Legend.Add(string(md)+" roofline bound (model)", l)
			for _, xy := range roof {
				ymax, ymin = max(ymax, xy.Y), min(ymin, xy.Y)
			}
		}
	}
	var llama plotter.XYs
	for _, lp := range r.LlamaBench {
		if lp.TG != nil {
			llama = append(llama, plotter.XY{X: float64(lp.BudgetBytes) / div, Y: lp.TG.TokPerSec})
			ymax, measMax = max(ymax, lp.TG.TokPerSec), max(measMax, lp.TG.TokPerSec)
			ymin = min(ymin, lp.TG.TokPerSec)
		}
	}
	if len(llama) > 0 {
		l, s, err := plotter.NewLinePoints(llama)
		if err != nil {
			return err
		}
		l.Color, l.Width = color.Black, vg.Points(1.5)
		s.Color, s.Shape = color.Black, draw.SquareGlyph{}
		p.Add(l, s)
		p.Legend.Add("llama.cpp llama-bench (-ngl = layers that fit)", l, s)
	}
	// room above the data for the legend; a log scale when the bound is
	// far above the measurements (a CPU far from its memory bandwidth),
	// so that neither is squashed
	p.Y.Max = math.Max(ymax*1.45, 1)
	if measMax > 0 && ymax > 4*measMax && ymin > 0 {
		p.Y.Scale, p.Y.Tick.Marker = plot.LogScale{}, plot.LogTicks{Prec: -1}
		p.Y.Min, p.Y.Max = ymin/1.5, ymax*3
		p.Y.Label.Text = "decode tokens/s (log scale)"
	}
	p.Legend.Top, p.Legend.Left = true, true
	p.Legend.TextStyle.Font.Size = vg.Points(8)
	p.Add(plotter.NewGrid())
	return p.Save(8*vg.Inch, 5.5*vg.Inch, path)
}

// plainTicks are the default ticks labelled without trailing zeros.
var plainTicks = plot.TickerFunc(func(lo, hi float64) []plot.Tick {
	ts := plot.DefaultTicks{}.Ticks(lo, hi)
	for i := range ts {
		if ts[i].Label != "" {
			ts[i].Label = strconv.FormatFloat(ts[i].Value, 'g', 6, 64)
		}
	}
	return ts
})

// flat stretches a host-only series (one point) across the budget axis.
func flat(xy plotter.XYs, xEnd float64) plotter.XYs {
	if len(xy) == 0 {
		return nil
	}
	return plotter.XYs{{X: 0, Y: xy[0].Y}, {X: xEnd, Y: xy[0].Y}}
}

// modes lists the report's modes in the order they first appear.
func (r *SweepReport) modes() []Mode {
	var out []Mode
	seen := map[Mode]bool{}
	for _, row := range r.Rows {
		if !seen[row.Mode] {
			seen[row.Mode] = true
			out = append(out, row.Mode)
		}
	}
	return out
}

// rooflineLabel says what the dashed lines assume.
func (r *SweepReport) rooflineLabel() string {
	mc := &r.Provenance.Machine
	if mc.CPUBandwidth <= 0 {
		return "no roofline (CPU bandwidth unknown)"
	}
	s := fmt.Sprintf("dashed: roofline bound (a model) at the measured CPU read bandwidth, %.1f GB/s", mc.CPUBandwidth/1e9)
	switch {
	case mc.DeviceKind == "cpu-capped":
		s += "\n(the stand-in device reads the same DRAM: the two halves' times add)"
	case mc.DeviceBandwidth > 0:
		s += fmt.Sprintf(", and device %.0f GB/s", mc.DeviceBandwidth/1e9)
	}
	return s
}

func (r *SweepReport) deviceLabel() string {
	if d := r.Provenance.Machine.Device; d != "" {
		return d
	}
	return "none"
}
