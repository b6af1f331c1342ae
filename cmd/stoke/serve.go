package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/stokehq/stoke/engine"
	"github.com/stokehq/stoke/engine/chat"
	"github.com/stokehq/stoke/models/dtype"
	"github.com/stokehq/stoke/net/openai"
)

// demoTemplate is the chat template given to the synthetic demo model,
// which has none: it is llama-shaped, with <s> and </s>.
const demoTemplate = "llama2"

func cmdServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("serve", stderr)
	model := fs.String("m", "", "GGUF model `file` (default: a synthetic demo model, generated on first use)")
	lf := addLoadFlags(fs)
	host := fs.String("host", "127.0.0.1", "address to listen on (0.0.0.0: every interface)")
	port := fs.Int("port", 8080, "TCP port to listen on")
	ctxLen := fs.Int("ctx", 0, "context length of each slot in tokens (0: the model's, at most 4096)")
	parallel := fs.Int("parallel", 4, "sequences decoded together (slots)")
	queue := fs.Int("queue", 0, "requests that may wait for a slot before the server answers 503 (0: 4 × parallel)")
	threads := fs.Int("threads", 0, "CPU threads (0: all cores)")
	batch := fs.Int("batch", 0, "tokens per forward pass: prompt chunks plus one per decoding slot (0: engine default)")
	kvType := fs.String("kv-type", "f32", "KV cache type: f32 or f16")
	tmplFlag := fs.String("chat-template", "", "chat template: a Jinja `file`, a template, or a built-in name ("+strings.Join(chat.BuiltinNames(), ", ")+"); default: the model's own")
	name := fs.String("name", "", "model id clients send as \"model\" (default: the file name without .gguf)")
	off := addOffloadFlags(fs)
	sparse := fs.Bool("sparse", false, "decode with the sparse FFN when one sequence decodes alone (a pass of several sequences, and prefill, stay dense, with the same thresholds)")
	pf := addPredictorFlags(fs, "predictor GGUF `file` for --sparse (default: the model's own, else oracle mode)")
	grace := fs.Duration("grace", openai.DefaultGrace, "on SIGTERM, how long in-flight requests may finish before they are cancelled")
	quiet := fs.Bool("quiet", false, "log warnings only, not one line per request")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if err := lf.check(); err != nil {
		return err
	}
	switch {
	case len(pos) > 0:
		return usagef("unexpected argument %q (the model is given with -m)", pos[0])
	case *port < 0 || *port > 65535:
		return usagef("--port %d is not a TCP port", *port)
	case *parallel < 1:
		return usagef("--parallel %d: need at least one slot", *parallel)
	case *ctxLen < 0 || *queue < 0 || *threads < 0 || *batch < 0:
		return usagef("--ctx, --queue, --threads and --batch must be ≥ 0")
	case pf.given() && !*sparse:
		return usagef("--predictor and --predictor-type need --sparse")
	}
	kvt, err := dtype.Parse(*kvType)
	if err != nil || (kvt != dtype.F32 && kvt != dtype.F16) {
		return usagef("--kv-type %q: want f32 or f16", *kvType)
	}
	level := slog.LevelInfo
	if *quiet {
		level = slog.LevelWarn
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	path := *model
	if path == "" {
		if path, err = ensureDemoModel(stderr); err != nil {
			return err
		}
	}
	defer off.release()
	lo := lf.options(path, off.usesDevice(), stderr)
	lo.KeepFFNRows = *sparse // the sparse FFN reads rows
	m, err := loadModel(path, lo, stderr)
	if err != nil {
		return err
	}
	defer m.Close()
	served := *name
	if served == "" {
		served = strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	}

	override := *tmplFlag
	if override == "" && *model == "" {
		override = demoTemplate
	}
	tmpl, tmplErr := chat.FromGGUF(m.File, served, override)
	switch {
	case tmplErr == nil:
	case override != "":
		return tmplErr // the user's own choice must work
	default:
		// the model's template is missing or broken: completions still work
		log.Warn("chat is disabled: /v1/chat/completions will answer 400 until a template is given", "reason", tmplErr)
	}

	slotCtx := *ctxLen
	if slotCtx == 0 {
		slotCtx = min(m.Config.Context, engine.DefaultContext)
	}
	off.devicePredictor = *sparse && !pf.given()
	setup, closeDev, err := off.setup(m, slotCtx, *parallel, planBatch(*batch, *parallel), kvt, stderr)
	if err != nil {
		return err
	}
	defer closeDev()
	sparseWith := "off"
	if *sparse {
		sp, how, err := sparsityFor(m, pf)
		if err != nil {
			return err
		}
		sparseWith = how
		offload := setup
		setup = func(r *engine.Runner) error {
			if offload != nil {
				if err := offload(r); err != nil {
					return err
				}
			}
			return r.EnableSparse(sp)
		}
	}
	sched, err := engine.NewScheduler(m, engine.SchedulerOptions{
		Parallel: *parallel, Context: slotCtx, Queue: *queue, Threads: *threads, KVType: kvt, Batch: *batch, Setup: setup,
	})
	if err != nil {
		return err
	}
	defer sched.Close()

	created := time.Now()
	if st, err := os.Stat(path); err == nil {
		created = st.ModTime()
	}
	srv, err := openai.NewServer(openai.Config{
		ModelName:     served,
		Backend:       sched,
		Tok:           m.Tok,
		ContextTokens: sched.Context(),
		Template:      tmpl,
		TemplateErr:   tmplErr,
		Created:       created,
		Logger:        log,
	})
	if err != nil {
		return err
	}
	tmplSource := "the model's"
	switch {
	case tmpl == nil:
		tmplSource = "none"
	case override != "":
		tmplSource = override
		if len(tmplSource) > 40 {
			tmplSource = "given with --chat-template"
		}
	}
	log.Info("model loaded", "model", served, "path", path, "arch", m.Config.Family.Name, "params", m.ParamCount(),
		"slots", *parallel, "ctx_per_slot", sched.Context(), "kv_type", kvt, "threads", *threads, "chat_template", tmplSource, "sparse_ffn", sparseWith)
	addr := net.JoinHostPort(*host, strconv.Itoa(*port))
	err = openai.Serve(ctx, addr, srv, openai.ServeOptions{Grace: *grace, Logger: log})
	if err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("serving on %s: %w", addr, err)
	}
	return nil
}
