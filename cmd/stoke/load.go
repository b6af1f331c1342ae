package main

import (
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/stokehq/stoke/engine"
)

// loadFlags choose where a command's weights live: --mmap maps the file,
// --no-mmap reads it into memory (huge pages where the kernel gives
// them), and by default the model is read into memory when
// engine.InMemoryPays says so and no device will hold weights, mapped
// otherwise.
type loadFlags struct {
	mmap, noMmap *bool
}

func addLoadFlags(fs *flag.FlagSet) *loadFlags {
	return &loadFlags{
		mmap:   fs.Bool("mmap", false, "map the model file (shares the page cache; the default when a GPU holds weights or the model is large for the RAM)"),
		noMmap: fs.Bool("no-mmap", false, "read the model into memory, in huge pages where the kernel gives them (the default on the CPU when it fits: faster decode, the whole file in RAM)"),
	}
}

// check reports contradictory flags; call it before any work.
func (lf *loadFlags) check() error {
	if *lf.mmap && *lf.noMmap {
		return usagef("--mmap and --no-mmap contradict each other")
	}
	return nil
}

// options resolves the flags for the model at path; device says whether
// a device will hold weights. It says on stderr what it chose when it
// chose by default. A model read into memory for the CPU alone also has
// its Q4_0, Q8_0, Q4_K and Q6_K matrices packed (engine.LoadOptions.PackQ4); a command that
// runs a sparse FFN keeps the FFN's in rows (KeepFFNRows).
func (lf *loadFlags) options(path string, device bool, stderr io.Writer) engine.LoadOptions {
	switch {
	case *lf.noMmap:
		return engine.LoadOptions{NoMmap: true, PackQ4: !device}
	case *lf.mmap || device:
		return engine.LoadOptions{}
	}
	if _, err := os.Stat(path); err != nil {
		return engine.LoadOptions{} // the load reports it
	}
	ok, why := engine.InMemoryPays(path)
	if ok {
		fmt.Fprintln(stderr, "stoke: reading the model into memory (huge pages; --mmap maps it instead)")
	} else {
		fmt.Fprintf(stderr, "stoke: mapping the model: %s\n", why)
	}
	return engine.LoadOptions{NoMmap: ok, PackQ4: ok}
}

// loadModel loads the model at path as lo says, and says on stderr how
// many matrices the load packed for the CPU (engine.LoadOptions.PackQ4).
func loadModel(path string, lo engine.LoadOptions, stderr io.Writer) (*engine.Model, error) {
	m, err := engine.LoadWith(path, lo)
	if err == nil && m.PackedMatrices() > 0 {
		fmt.Fprintf(stderr, "stoke: packed %d matrices in place for this CPU's kernels\n", m.PackedMatrices())
	}
	return m, err
}
