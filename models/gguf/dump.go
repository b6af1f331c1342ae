package gguf

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
)

// dumpMaxString is how much of a long string (a chat template, say) Dump
// prints when it truncates.
const dumpMaxString = 256

// Dump writes a readable listing of f, in the spirit of gguf-py's
// gguf-dump: the header facts, every key/value pair with arrays cut to
// maxArray elements (and long strings cut too; maxArray < 0 prints
// everything), then a table of tensors: index, name, type, shape, bytes and
// offset within the data section.
func Dump(out io.Writer, f *File, maxArray int) {
	maxString := dumpMaxString
	if maxArray < 0 {
		maxString = -1
	}
	fmt.Fprintf(out, "%s v%d: %d key/value pairs, %d tensors, alignment %d, data at byte %d\n",
		f.Magic, f.Version, len(f.KVs), len(f.Tensors), f.Alignment, f.DataOffset)

	fmt.Fprintf(out, "\nkey/value pairs:\n")
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	for i, kv := range f.KVs {
		var sb strings.Builder
		kv.Value.text(&sb, maxArray, maxString)
		fmt.Fprintf(tw, "%5d\t%s\t%s\t= %s\n", i, kv.Value.TypeText(), strconv.Quote(kv.Key), sb.String())
	}
	tw.Flush()

	fmt.Fprintf(out, "\ntensors:\n")
	rows := [][6]string{{"index", "name", "type", "shape", "bytes", "offset"}}
	var total uint64
	for i := range f.Tensors {
		t := &f.Tensors[i]
		total += t.Size
		dims := make([]string, len(t.Shape))
		for j, ne := range t.Shape {
			dims[j] = strconv.FormatUint(ne, 10)
		}
		name := t.Name
		if !printable(name) {
			name = strconv.Quote(name)
		}
		rows = append(rows, [6]string{strconv.Itoa(i), name, t.Type.String(),
			"[" + strings.Join(dims, ", ") + "]", strconv.FormatUint(t.Size, 10), strconv.FormatUint(t.Offset, 10)})
	}
	var width [6]int
	for _, r := range rows {
		for c, cell := range r {
			width[c] = max(width[c], len(cell))
		}
	}
	for _, r := range rows {
		// numbers right-aligned, text left-aligned
		fmt.Fprintf(out, "%*s  %-*s  %-*s  %-*s  %*s  %*s\n", width[0], r[0], width[1], r[1],
			width[2], r[2], width[3], r[3], width[4], r[4], width[5], r[5])
	}
	fmt.Fprintf(out, "%d tensors, %d bytes of tensor data\n", len(f.Tensors), total)
}

func printable(s string) bool {
	for _, r := range s {
		if !strconv.IsPrint(r) || r == ' ' {
			return false
		}
	}
	return true
}
