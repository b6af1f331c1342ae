package bench_test

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/stokehq/stoke/bench"
)

// TestLlamaBenchNoMmap: with Options.NoMmap llama-bench is told to load
// without mmap in the dialect its --help shows: "-lm none" where it has
// --load-mode, "-mmp 0" before that; without it, neither. The
// llama-bench here is a script that records its arguments.
func TestLlamaBenchNoMmap(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("the stand-in llama-bench is a shell script")
	}
	for _, tc := range []struct {
		help   string
		noMmap bool
		want   string // in the arguments; "" for neither flag
	}{
		{"  -lm, --load-mode <auto|none|mmap|mlock|mmap+mlock|dio> (default: auto)", true, "-lm none"},
		{"  -mmp, --mmap <0|1>                        (default: 1)", true, "-mmp 0"},
		{"  -lm, --load-mode <auto|none|mmap|mlock|mmap+mlock|dio> (default: auto)", false, ""},
	} {
		dir := t.TempDir()
		argsFile := filepath.Join(dir, "args")
		script := "#!/bin/sh\n" +
			"if [ \"$1\" = --help ]; then echo '" + tc.help + "'; exit 0; fi\n" +
			"echo \"$@\" > " + argsFile + "\n" +
			"echo '[{\"n_prompt\": 4, \"n_gen\": 0, \"n_threads\": 1, \"avg_ts\": 50, \"stddev_ts\": 1, \"samples_ts\": [50]}]'\n"
		bin := filepath.Join(dir, "llama-bench")
		if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
		lb, err := bench.LlamaBenchBinary(bin, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := lb.Run(context.Background(), "m.gguf", bench.Options{Threads: 1, PromptLen: 4, NoMmap: tc.noMmap}); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(argsFile)
		if err != nil {
			t.Fatal(err)
		}
		args := " " + strings.TrimSpace(string(b)) + " "
		switch {
		case tc.want != "" && !strings.Contains(args, " "+tc.want+" "):
			t.Errorf("help %q: arguments %q lack %q", tc.help, args, tc.want)
		case tc.want == "" && (strings.Contains(args, " -lm ") || strings.Contains(args, " -mmp ")):
			t.Errorf("without NoMmap: arguments %q ask for a load mode", args)
		}
	}
}
