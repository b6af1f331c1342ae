package main

import (
	"context"
	cryptorand "crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
	"os"

	"github.com/stokehq/stoke/models/gguf"
)

func cmdInspect(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("inspect", stderr)
	maxArray := fs.Int("max-array", 8, "array elements to print per metadata value")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("want exactly one GGUF file, got %d arguments", len(pos))
	}
	f, err := gguf.Open(pos[0])
	if err != nil {
		return err
	}
	defer f.Close()
	if st, err := os.Stat(pos[0]); err == nil {
		fmt.Fprintf(stdout, "file: %s (%d bytes)\n", pos[0], st.Size())
	}
	gguf.Dump(stdout, f, *maxArray)
	return nil
}

// randomSeed draws a seed for runs that did not ask for one.
func randomSeed() uint64 {
	var b [8]byte
	cryptorand.Read(b[:])
	return binary.LittleEndian.Uint64(b[:])
}
