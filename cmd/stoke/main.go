// Command stoke is Stoke's one CLI: run a model, inspect a GGUF file,
// generate synthetic models, and (as the other packages land) serve,
// profile, plan, bench and join a network.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
)

type command struct {
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

var commands = map[string]command{
	"run":              {"generate text from a prompt", cmdRun},
	"inspect":          {"print a GGUF file's metadata and tensor table", cmdInspect},
	"synth":            {"write a synthetic llama-shaped GGUF model", cmdSynth},
	"perplexity":       {"score a text file (llama.cpp-compatible perplexity)", cmdPerplexity},
	"bench":            {"measure prompt and generation tokens/s (optionally against llama.cpp)", cmdBench},
	"serve":            {"serve a model over an OpenAI-compatible HTTP API", cmdServe},
	"profile":          {"record per-neuron FFN firing statistics over a text", cmdProfile},
	"reorder":          {"renumber a model's FFN neurons hot first by a profile (faster sparse FFN)", cmdReorder},
	"train-predictor":  {"train per-layer activation predictors from a profile", cmdTrainPredictor},
	"eval-predictor":   {"recall, precision, sparsity and cost of a predictor on held-out text", cmdEvalPredictor},
	"plan":             {"place a model in a VRAM budget: per-layer placement, bytes, hit rate, roofline tok/s", cmdPlan},
	"fingerprint-eval": {"measure fingerprint size, verification cost, false rejections and detection", cmdFingerprintEval},
	"node":             {"join a Stoke network: serve jobs for a coordinator over QUIC", cmdNode},
	"coordinator":      {"run a network's coordinator: admit nodes, route an OpenAI gateway to them, spot-check", cmdCoordinator},
}

func usage(w io.Writer) {
	fmt.Fprintf(w, "Stoke: LLM inference for small GPUs.\n\nUsage: stoke <command> [flags]\n\nCommands:\n")
	var names []string
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-10s %s\n", n, commands[n].summary)
	}
	fmt.Fprintf(w, "\nRun 'stoke <command> -h' for a command's flags.\n")
}

func main() {
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(mainErr(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// mainErr dispatches to a command and maps its error to an exit status:
// 2 for usage errors, 1 for everything else.
func mainErr(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stdout)
		return 0
	}
	c, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "stoke: unknown command %q\n\n", args[0])
		usage(stderr)
		return 2
	}
	err := c.run(ctx, args[1:], stdout, stderr)
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, new(usageError)):
		fmt.Fprintf(stderr, "stoke %s: %v\n", args[0], err)
		return 2
	}
	fmt.Fprintf(stderr, "stoke %s: %v\n", args[0], err)
	return 1
}

type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error { return usageError{fmt.Sprintf(format, a...)} }

// newFlags makes a flag set that reports errors instead of exiting.
func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("stoke "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// parseFlags parses args, allowing flags after positional arguments
// ("stoke inspect FILE --json") as users expect from llama.cpp tools.
func parseFlags(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, usageError{err.Error()}
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
		if len(args) == 0 || !strings.HasPrefix(args[0], "-") {
			for len(args) > 0 && !strings.HasPrefix(args[0], "-") {
				pos = append(pos, args[0])
				args = args[1:]
			}
			if len(args) == 0 {
				return pos, nil
			}
		}
	}
}
