package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/stokehq/stoke/engine"
	"github.com/stokehq/stoke/models/dtype"
	"github.com/stokehq/stoke/net/identity"
	"github.com/stokehq/stoke/net/modelid"
	"github.com/stokehq/stoke/net/node"
	"github.com/stokehq/stoke/net/verify"
	"github.com/stokehq/stoke/net/wire"
)

// knownCoordinators is the node's trust-on-first-use file of coordinator
// keys, in its data directory.
const knownCoordinators = "known_coordinators"

func cmdNode(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("node", stderr)
	coordinator := fs.String("coordinator", "", "the coordinator's QUIC `host:port`")
	coordKey := fs.String("coordinator-key", "", "the coordinator's public key in hex (default: trusted on first use and pinned in DATA/"+knownCoordinators+")")
	open := fs.Bool("open", false, "accept whatever key the coordinator presents (no pinning: for trusted networks and tests)")
	model := fs.String("m", "", "GGUF model `file` to serve (default: the synthetic demo model)")
	lf := addLoadFlags(fs)
	data := fs.String("data", "", "data `dir`: the node's key (created on first start, mode 0600), pinned coordinator keys, model digests")
	name := fs.String("name", "", "the node's name in the coordinator's logs (default: the host's)")
	parallel := fs.Int("parallel", 4, "jobs decoded together (slots)")
	ctxLen := fs.Int("ctx", 0, "context of each slot in tokens (0: the model's, at most 4096)")
	threads := fs.Int("threads", 0, "CPU threads (0: all cores)")
	batch := fs.Int("batch", 0, "tokens per forward pass (0: engine default)")
	kvType := fs.String("kv-type", "f32", "KV cache type: f32 or f16")
	off := addOffloadFlags(fs)
	verifier := fs.Bool("verify", true, "accept verification requests (re-run other nodes' jobs)")
	grace := fs.Duration("grace", node.DefaultDrainTimeout, "on SIGTERM, how long in-flight jobs may finish before the node leaves")
	quiet := fs.Bool("quiet", false, "log warnings only")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if err := lf.check(); err != nil {
		return err
	}
	switch {
	case len(pos) > 0:
		return usagef("unexpected argument %q", pos[0])
	case *coordinator == "":
		return usagef("--coordinator host:port is required")
	case *data == "":
		return usagef("--data DIR is required (the node's key lives there)")
	case *parallel < 1:
		return usagef("--parallel %d: need at least one slot", *parallel)
	case *ctxLen < 0 || *threads < 0 || *batch < 0:
		return usagef("--ctx, --threads and --batch must be ≥ 0")
	case *open && *coordKey != "":
		return usagef("--open and --coordinator-key contradict each other")
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

	id, created, err := identity.LoadOrCreate(*data)
	if err != nil {
		return err
	}
	if created {
		fmt.Fprintf(stderr, "stoke node: created a key in %s\nstoke node: ask the coordinator's operator to run: stoke coordinator admit --data DIR %s\n",
			filepath.Join(*data, identity.KeyFile), id.Pub)
	}
	log.Info("node identity", "key", id.Pub.String())
	var pin func(identity.PublicKey) error
	switch {
	case *coordKey != "":
		k, err := identity.ParsePublicKey(*coordKey)
		if err != nil {
			return usagef("--coordinator-key: %v", err)
		}
		pin = identity.Pin("", *coordinator, &k)
	case !*open:
		pin = identity.Pin(filepath.Join(*data, knownCoordinators), *coordinator, nil)
	}

	path := *model
	if path == "" {
		if path, err = ensureDemoModel(stderr); err != nil {
			return err
		}
	}
	defer off.release()
	m, err := loadModel(path, lf.options(path, off.usesDevice(), stderr), stderr)
	if err != nil {
		return err
	}
	defer m.Close()
	slotCtx := *ctxLen
	if slotCtx == 0 {
		slotCtx = min(m.Config.Context, engine.DefaultContext)
	}
	setup, closeDev, err := off.setup(m, slotCtx, *parallel, planBatch(*batch, *parallel), kvt, stderr)
	if err != nil {
		return err
	}
	defer closeDev()
	sched, err := engine.NewScheduler(m, engine.SchedulerOptions{
		Parallel: *parallel, Context: slotCtx, Threads: *threads, KVType: kvt, Batch: *batch, Setup: setup,
	})
	if err != nil {
		return err
	}
	defer sched.Close()
	served := strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	info, err := modelid.Of(m, served, sched.Context(), *data)
	if err != nil {
		return err
	}
	tps, pps, err := measure(ctx, sched, m)
	if err != nil {
		return fmt.Errorf("measuring throughput: %w", err)
	}
	var vram uint64
	if v, err := parseSize(*off.vram, m.WeightBytes()); err == nil && v > 0 {
		vram = uint64(v)
	}
	hw := node.DetectHardware(vram)
	if *name == "" {
		*name = hostname()
	}
	log.Info("model loaded", "model", served, "sha256", fmt.Sprintf("%x", info.SHA256), "arch", info.Arch, "quant", info.Quant,
		"slots", *parallel, "ctx_per_slot", sched.Context(), "tokens_per_s", fmt.Sprintf("%.1f", tps), "cpu", hw.CPU, "gpu", hw.GPU)

	cfg := node.Config{
		Coordinator: *coordinator, Identity: id, Pin: pin,
		Hello: wire.Hello{Name: *name, Hardware: hw, Models: []wire.ModelInfo{info}, Slots: uint32(*parallel),
			TokensPerSec: float32(tps), PromptTokensPerSec: float32(pps)},
		Backend: sched, Vocab: m.Config.Vocab, Fingerprint: true, DrainTimeout: *grace, Logger: log,
	}
	if *verifier {
		v := verify.NewEngine(m, engine.Options{Context: sched.Context(), Threads: *threads})
		v.RequireProof(true)
		defer v.Close()
		cfg.Verifier = v
	}
	a, err := node.New(cfg)
	if err != nil {
		return err
	}
	return a.Run(ctx)
}

// measure runs a short greedy generation to report decode and prefill
// speed in the node's hello.
func measure(ctx context.Context, sched *engine.Scheduler, m *engine.Model) (tps, pps float64, err error) {
	prompt := m.Tok.Encode("Once upon a time, in a land far away, there lived a", true, false)
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	res, err := sched.Generate(ctx, prompt, engine.GenerateParams{MaxTokens: 16, IgnoreEOS: true,
		Sampler: engine.SamplerParams{TopP: 1, RepeatPenalty: 1}}, nil)
	if err != nil {
		return 0, 0, err
	}
	return res.TokensPerSecond(), res.PromptTokensPerSecond(), nil
}

func hostname() string {
	h, err := os.Hostname()
	if err != nil {
		return "node"
	}
	return h
}
