package bench

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Table is a report: named columns and rows of values (strings, ints,
// floats), printed as Markdown, CSV or JSON.
type Table struct {
	Title   string
	Note    string // a caveat printed under the title (Markdown) and kept in JSON
	Columns []string
	Rows    [][]any
}

// Formats are the table formats Write takes.
var Formats = []string{"md", "csv", "json"}

// Write prints t in format: "md" (a GitHub table under a heading), "csv"
// (header and rows only; put caveats in a column) or "json" (an object
// with title, note, columns and rows as objects keyed by column).
func (t *Table) Write(w io.Writer, format string) error {
	switch format {
	case "md", "markdown":
		return t.writeMarkdown(w)
	case "csv":
		cw := csv.NewWriter(w)
		if err := cw.Write(t.Columns); err != nil {
			return err
		}
		for _, r := range t.Rows {
			rec := make([]string, len(r))
			for i, v := range r {
				rec[i] = cell(v, false)
			}
			if err := cw.Write(rec); err != nil {
				return err
			}
		}
		cw.Flush()
		return cw.Error()
	case "json":
		type obj = map[string]any
		rows := make([]obj, 0, len(t.Rows))
		for _, r := range t.Rows {
			o := obj{}
			for i, v := range r {
				if i < len(t.Columns) {
					o[t.Columns[i]] = v
				}
			}
			rows = append(rows, o)
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(obj{"title": t.Title, "note": t.Note, "columns": t.Columns, "rows": rows})
	}
	return fmt.Errorf("bench: unknown format %q (want md, csv or json)", format)
}

func (t *Table) writeMarkdown(w io.Writer) error {
	var b strings.Builder
	if t.Title != "" {
		fmt.Fprintf(&b, "### %s\n\n", t.Title)
	}
	if t.Note != "" {
		fmt.Fprintf(&b, "%s\n\n", t.Note)
	}
	esc := func(s string) string { return strings.ReplaceAll(s, "|", `\|`) }
	hdr := make([]string, len(t.Columns))
	for i, c := range t.Columns {
		hdr[i] = esc(c)
	}
	b.WriteString("| " + strings.Join(hdr, " | ") + " |\n|")
	for range t.Columns {
		b.WriteString(" --- |")
	}
	b.WriteString("\n")
	for _, r := range t.Rows {
		c := make([]string, len(r))
		for i, v := range r {
			c[i] = esc(cell(v, true))
		}
		b.WriteString("| " + strings.Join(c, " | ") + " |\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// cell formats a value; pretty rounds floats for reading.
func cell(v any, pretty bool) string {
	switch x := v.(type) {
	case float64:
		if pretty {
			return strconv.FormatFloat(x, 'f', -1, 64)
		}
		return strconv.FormatFloat(x, 'g', -1, 64)
	case nil:
		return ""
	}
	return fmt.Sprint(v)
}

// round keeps d decimals, for tables meant to be read.
func round(v float64, d int) float64 {
	p, err := strconv.ParseFloat(strconv.FormatFloat(v, 'f', d, 64), 64)
	if err != nil {
		return v
	}
	return p
}
