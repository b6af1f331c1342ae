package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// progress draws a one-line progress bar on a terminal, at most ten times
// a second; on anything else (a pipe, a test buffer) it stays silent.
type progress struct {
	w     io.Writer
	label string
	start time.Time
	last  time.Time
	tty   bool
}

func newProgress(w io.Writer, label string) *progress {
	p := &progress{w: w, label: label, start: time.Now()}
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			p.tty = true
		}
	}
	return p
}

func (p *progress) update(done, total int) {
	if !p.tty || total <= 0 || (time.Since(p.last) < 100*time.Millisecond && done < total) {
		return
	}
	p.last = time.Now()
	const width = 30
	fill := width * done / total
	el := time.Since(p.start)
	eta := time.Duration(0)
	if done > 0 {
		eta = time.Duration(float64(el) * float64(total-done) / float64(done))
	}
	fmt.Fprintf(p.w, "\r%s [%s%s] %d/%d  %s elapsed, %s left ", p.label,
		strings.Repeat("#", fill), strings.Repeat(".", width-fill), done, total,
		el.Round(time.Second), eta.Round(time.Second))
}

func (p *progress) done() {
	if p.tty {
		fmt.Fprintln(p.w)
	}
}
