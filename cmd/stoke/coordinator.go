package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/stokehq/stoke/engine"
	"github.com/stokehq/stoke/engine/chat"
	"github.com/stokehq/stoke/net/coord"
	"github.com/stokehq/stoke/net/identity"
	"github.com/stokehq/stoke/net/modelid"
	"github.com/stokehq/stoke/net/openai"
	"github.com/stokehq/stoke/net/verify"
)

// ledgerFile is the coordinator's bbolt file in its data directory.
const ledgerFile = "ledger.db"

func cmdCoordinator(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case "admit":
			return cmdCoordAdmit(args[1:], stdout, stderr)
		case "revoke":
			return cmdCoordRevoke(args[1:], stdout, stderr)
		case "ledger":
			return cmdCoordLedger(args[1:], stdout, stderr)
		case "payoff":
			return cmdCoordPayoff(args[1:], stdout, stderr)
		}
	}
	fs := newFlags("coordinator", stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: stoke coordinator --listen QUIC_ADDR --http HTTP_ADDR --data DIR [flags]\n"+
			"       stoke coordinator admit|revoke|ledger|payoff [flags] (see -h of each)\n\nFlags:\n")
		fs.PrintDefaults()
	}
	listen := fs.String("listen", ":7070", "QUIC (UDP) `address` nodes dial")
	httpAddr := fs.String("http", "127.0.0.1:8080", "OpenAI-compatible HTTP gateway `address`")
	data := fs.String("data", "", "data `dir`: the coordinator's key (0600) and its ledger ("+ledgerFile+")")
	model := fs.String("m", "", "GGUF model `file` the network serves: its sha256 is what nodes must serve; its tokenizer, chat template and weights (for checks) are used here (default: the synthetic demo model)")
	name := fs.String("name", "", "model id clients send as \"model\" (default: the file name without .gguf)")
	open := fs.Bool("open", false, "admit any key (recorded with --open-stake) instead of only keys admitted with 'stoke coordinator admit'")
	openStake := fs.Int64("open-stake", 0, "stake credited to keys admitted by --open")
	minStake := fs.Int64("min-stake", 0, "stake an admitted key needs to join (a node slashed below it is disconnected)")
	verifyP := fs.String("verify-p", "0.05", "probability a job is spot-checked, or auto: 1.5 × the minimum that makes cheating lose (needs --saving)")
	reward := fs.Int64("reward", coord.DefaultPolicy.Reward, "credits per finished job (R)")
	penalty := fs.Int64("penalty", coord.DefaultPolicy.Penalty, "stake slashed per failed check (S)")
	saving := fs.Float64("saving", 0, "what a cheater saves per job, in credits (C), to check --verify-p against p > C/((1−r)(R+S))")
	collusion := fs.Float64("collusion", 0, "assumed share of colluding verifiers (r)")
	falseReject := fs.Float64("false-reject", coord.DefaultPolicy.FalseReject, "honest false-rejection rate of a check (ε) for the quarantine test")
	alpha := fs.Float64("alpha", coord.DefaultPolicy.Alpha, "quarantine when P(this many failures | honest) ≤ α")
	verifyBy := fs.String("verify-by", coord.VerifyAuto, "who re-runs checked jobs: auto (this coordinator's engine), local, or nodes (a random other node; failures confirmed here)")
	heartbeat := fs.Duration("heartbeat", coord.DefaultHeartbeat, "how often nodes report")
	missed := fs.Int("missed", coord.DefaultMissedBeats, "heartbeats a node may miss before it leaves the rotation")
	ctxLen := fs.Int("ctx", 0, "longest prompt + answer in tokens (0: the model's, at most 4096)")
	threads := fs.Int("threads", 0, "CPU threads for spot checks (0: all cores)")
	tmplFlag := fs.String("chat-template", "", "chat template: a Jinja `file`, a template, or a built-in name ("+strings.Join(chat.BuiltinNames(), ", ")+"); default: the model's own")
	grace := fs.Duration("grace", openai.DefaultGrace, "on SIGTERM, how long in-flight requests may finish")
	quiet := fs.Bool("quiet", false, "log warnings only")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	switch {
	case len(pos) > 0:
		return usagef("unexpected argument %q", pos[0])
	case *data == "":
		return usagef("--data DIR is required (the key and the ledger live there)")
	case *ctxLen < 0 || *threads < 0:
		return usagef("--ctx and --threads must be ≥ 0")
	}
	pol := coord.Policy{Reward: *reward, Penalty: *penalty, FalseReject: *falseReject, Alpha: *alpha}
	minP := coord.MinCheckProbability(*saving, float64(*reward), float64(*penalty), *collusion)
	if *verifyP == "auto" {
		if *saving <= 0 {
			return usagef("--verify-p auto needs --saving (what a cheater saves per job)")
		}
		pol.P = min(1, 1.5*minP)
	} else if pol.P, err = strconv.ParseFloat(*verifyP, 64); err != nil {
		return usagef("--verify-p %q: a probability or auto", *verifyP)
	}
	if err := pol.Validate(); err != nil {
		return usagef("%v", err)
	}
	level := slog.LevelInfo
	if *quiet {
		level = slog.LevelWarn
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	if *saving > 0 {
		gain := coord.CheatGain(*saving, float64(*reward), float64(*penalty), pol.P, *collusion)
		if pol.P <= minP {
			log.Warn("cheating pays at this check probability: raise --verify-p or --penalty", "verify_p", pol.P, "min_p", minP,
				"min_penalty", coord.MinPenalty(*saving, float64(*reward), pol.P, *collusion), "cheat_gain_per_job", gain)
		} else {
			log.Info("cheating loses", "verify_p", pol.P, "min_p", minP, "cheat_gain_per_job", gain)
		}
	}

	id, created, err := identity.LoadOrCreate(*data)
	if err != nil {
		return err
	}
	if created {
		log.Info("created the coordinator's key", "file", filepath.Join(*data, identity.KeyFile))
	}
	fmt.Fprintf(stderr, "stoke coordinator: key %s (nodes may pin it with --coordinator-key)\n", id.Pub)
	ledger, err := coord.OpenLedger(filepath.Join(*data, ledgerFile))
	if err != nil {
		return err
	}
	defer ledger.Close()

	path := *model
	if path == "" {
		if path, err = ensureDemoModel(stderr); err != nil {
			return err
		}
	}
	m, err := engine.Load(path)
	if err != nil {
		return err
	}
	defer m.Close()
	served := *name
	if served == "" {
		served = strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	}
	ctxTokens := *ctxLen
	if ctxTokens == 0 {
		ctxTokens = min(m.Config.Context, engine.DefaultContext)
	}
	info, err := modelid.Of(m, served, ctxTokens, *data)
	if err != nil {
		return err
	}
	override := *tmplFlag
	if override == "" && *model == "" {
		override = demoTemplate
	}
	tmpl, tmplErr := chat.FromGGUF(m.File, served, override)
	if tmplErr != nil && override != "" {
		return tmplErr
	}
	cfg := coord.Config{
		Listen: *listen, Identity: id, Ledger: ledger, Open: *open, OpenStake: *openStake, MinStake: *minStake,
		Model: info, Tok: m.Tok, VerifyBy: *verifyBy, Policy: pol, Heartbeat: *heartbeat, MissedBeats: *missed, Logger: log,
	}
	// the coordinator's engine checks jobs (auto, local) or confirms a
	// node's rejection before anyone is slashed (nodes)
	v := verify.NewEngine(m, engine.Options{Context: ctxTokens, Threads: *threads})
	v.RequireProof(true)
	defer v.Close()
	cfg.Verifier = v
	c, err := coord.New(cfg)
	if err != nil {
		return usagef("%v", err)
	}
	if err := c.Start(); err != nil {
		return err
	}
	defer c.Close()
	api, err := openai.NewServer(openai.Config{ModelName: served, Backend: c.Gateway(), Tok: m.Tok, ContextTokens: ctxTokens,
		Template: tmpl, TemplateErr: tmplErr, Logger: log})
	if err != nil {
		return err
	}
	log.Info("gateway", "model", served, "sha256", fmt.Sprintf("%x", info.SHA256), "arch", info.Arch, "verify_p", pol.P,
		"expected_cheater_jobs_to_quarantine", fmt.Sprintf("%.1f", coord.ExpectedJobsToQuarantine(pol.P, *collusion, pol.FalseReject, pol.Alpha)))
	err = openai.Serve(ctx, *httpAddr, c.Handler(api), openai.ServeOptions{Grace: *grace, Logger: log})
	if err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("serving on %s: %w", *httpAddr, err)
	}
	return nil
}

// openLedger opens DIR's ledger for the admin subcommands.
func openLedger(data string) (*coord.Ledger, error) {
	if data == "" {
		return nil, usagef("--data DIR is required")
	}
	if err := os.MkdirAll(data, 0o700); err != nil {
		return nil, err
	}
	return coord.OpenLedger(filepath.Join(data, ledgerFile))
}

func cmdCoordAdmit(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("coordinator admit", stderr)
	data := fs.String("data", "", "the coordinator's data `dir`")
	stake := fs.Int64("stake", 0, "credits the node puts at stake (slashed on failed checks)")
	name := fs.String("name", "", "a name for the node")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("give one node key (hex): stoke coordinator admit --data DIR [--stake N] KEY")
	}
	key, err := identity.ParsePublicKey(pos[0])
	if err != nil {
		return usagef("%v", err)
	}
	if *stake < 0 {
		return usagef("--stake must be ≥ 0")
	}
	l, err := openLedger(*data)
	if err != nil {
		return err
	}
	defer l.Close()
	if err := l.Admit(key, *name, *stake); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "admitted %s with stake %d (any quarantine lifted)\n", key, *stake)
	return nil
}

func cmdCoordRevoke(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("coordinator revoke", stderr)
	data := fs.String("data", "", "the coordinator's data `dir`")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("give one node key (hex)")
	}
	key, err := identity.ParsePublicKey(pos[0])
	if err != nil {
		return usagef("%v", err)
	}
	l, err := openLedger(*data)
	if err != nil {
		return err
	}
	defer l.Close()
	if err := l.Revoke(key); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "revoked %s\n", key)
	return nil
}

func cmdCoordLedger(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("coordinator ledger", stderr)
	data := fs.String("data", "", "the coordinator's data `dir`")
	asJSON := fs.Bool("json", false, "print node, job and check records as JSON")
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	l, err := openLedger(*data)
	if err != nil {
		return err
	}
	defer l.Close()
	nodes, err := l.NodeRecords()
	if err != nil {
		return err
	}
	if *asJSON {
		jobs, err := l.JobRecords()
		if err != nil {
			return err
		}
		checks, err := l.CheckRecords()
		if err != nil {
			return err
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(map[string]any{"nodes": nodes, "jobs": jobs, "checks": checks})
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KEY\tNAME\tADMITTED\tSTAKE\tBALANCE\tJOBS\tLOST\tCHECKS\tFAILED\tREPUTATION\tQUARANTINED")
	for _, r := range nodes {
		q := "-"
		if r.Quarantined {
			q = r.QuarantinedAt.Format(time.RFC3339) + ": " + r.Why
		}
		fmt.Fprintf(tw, "%s\t%s\t%v\t%d\t%d\t%d\t%d\t%d\t%d\t%.2f\t%s\n", r.Key.Short(), r.Name, r.Admitted, r.Stake, r.Balance,
			r.Jobs, r.Lost, r.Checks, r.Failed, r.Reputation(), q)
	}
	return tw.Flush()
}

func cmdCoordPayoff(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("coordinator payoff", stderr)
	saving := fs.Float64("saving", 0, "what a cheater saves per job (C)")
	reward := fs.Float64("reward", float64(coord.DefaultPolicy.Reward), "reward per job (R)")
	penalty := fs.Float64("penalty", float64(coord.DefaultPolicy.Penalty), "stake slashed per failed check (S)")
	collusion := fs.Float64("collusion", 0, "share of colluding verifiers (r)")
	p := fs.Float64("verify-p", 0, "a check probability to evaluate (0: only the minimum)")
	eps := fs.Float64("false-reject", coord.DefaultPolicy.FalseReject, "honest false-rejection rate (ε)")
	alpha := fs.Float64("alpha", coord.DefaultPolicy.Alpha, "quarantine bound (α)")
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	if *saving <= 0 {
		return usagef("--saving C > 0 is required")
	}
	minP := coord.MinCheckProbability(*saving, *reward, *penalty, *collusion)
	fmt.Fprintf(stdout, "cheating loses when p > C / ((1 − r)(R + S)) = %g / ((1 − %g)(%g + %g)) = %.6g\n", *saving, *collusion, *reward, *penalty, minP)
	if minP > 1 {
		fmt.Fprintf(stdout, "no check probability deters: raise the penalty above %.6g (at p = 1)\n", coord.MinPenalty(*saving, *reward, 1, *collusion))
	}
	if *p > 0 {
		fmt.Fprintf(stdout, "at p = %g: cheater's expected gain per job %.6g; smallest deterring penalty %.6g\n", *p,
			coord.CheatGain(*saving, *reward, *penalty, *p, *collusion), coord.MinPenalty(*saving, *reward, *p, *collusion))
		fmt.Fprintf(stdout, "a cheater is quarantined after %d failed checks (ε = %g, α = %g): about %.1f of its jobs\n",
			coord.FailuresToQuarantine(*eps, *alpha), *eps, *alpha, coord.ExpectedJobsToQuarantine(*p, *collusion, *eps, *alpha))
		fmt.Fprintf(stdout, "an honest node loses %.6g per job to false rejections (p·ε·(R+S))\n", *p**eps*(*reward+*penalty))
	}
	if math.IsInf(minP, 1) {
		return errors.New("no finite minimum")
	}
	return nil
}
