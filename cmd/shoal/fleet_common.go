package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/shoal-dev/shoal/fleet"
	"github.com/shoal-dev/shoal/internal/outfile"
	"github.com/shoal-dev/shoal/tenants"
	"github.com/urfave/cli/v2"
)

// Flags shared by the fleet commands.

func natsFlag() cli.Flag {
	return &cli.StringFlag{Name: "nats", Value: fleet.DefaultURL, Usage: "NATS server URL", EnvVars: []string{"SHOAL_NATS"}}
}

// natsAuthFlags are the NATS authentication and TLS options, declared here
// only: addNATSAuthFlags gives them to every command that has --nats, and
// natsAuth reads them.
func natsAuthFlags() []cli.Flag {
	const cat = "NATS authentication and TLS"
	return []cli.Flag{
		&cli.StringFlag{Name: "nats-creds", Usage: "credentials file (user JWT and NKey seed, from nsc)", EnvVars: []string{"SHOAL_NATS_CREDS"}, Category: cat, TakesFile: true},
		&cli.StringFlag{Name: "nats-nkey", Usage: "file holding an NKey user seed", EnvVars: []string{"SHOAL_NATS_NKEY"}, Category: cat, TakesFile: true},
		&cli.StringFlag{Name: "nats-user", Usage: "user name (with --nats-password)", EnvVars: []string{"SHOAL_NATS_USER"}, Category: cat},
		&cli.StringFlag{Name: "nats-password", Usage: "password (prefer SHOAL_NATS_PASSWORD: flags show in ps)", EnvVars: []string{"SHOAL_NATS_PASSWORD"}, Category: cat},
		&cli.StringFlag{Name: "nats-token", Usage: "authentication token (prefer SHOAL_NATS_TOKEN: flags show in ps)", EnvVars: []string{"SHOAL_NATS_TOKEN"}, Category: cat},
		&cli.StringFlag{Name: "nats-tls-ca", Usage: "CA certificates (PEM) to verify the server; implies TLS", EnvVars: []string{"SHOAL_NATS_TLS_CA"}, Category: cat, TakesFile: true},
		&cli.StringFlag{Name: "nats-tls-cert", Usage: "client certificate (PEM) for mutual TLS, with --nats-tls-key", EnvVars: []string{"SHOAL_NATS_TLS_CERT"}, Category: cat, TakesFile: true},
		&cli.StringFlag{Name: "nats-tls-key", Usage: "client certificate's private key (PEM)", EnvVars: []string{"SHOAL_NATS_TLS_KEY"}, Category: cat, TakesFile: true},
	}
}

// addNATSAuthFlags gives the NATS authentication flags to every command
// (and subcommand) that has --nats.
func addNATSAuthFlags(cmds []*cli.Command) {
	for _, cmd := range cmds {
		addNATSAuthFlags(cmd.Subcommands)
		hasURL, hasAuth := false, false
		for _, f := range cmd.Flags {
			for _, n := range f.Names() {
				hasURL = hasURL || n == "nats"
				hasAuth = hasAuth || n == "nats-creds"
			}
		}
		if hasURL && !hasAuth { // commands may be shared by several apps (tests)
			cmd.Flags = append(cmd.Flags, natsAuthFlags()...)
		}
	}
}

// natsAuth reads the NATS authentication flags.
func natsAuth(c *cli.Context) fleet.Auth {
	return fleet.Auth{
		CredsFile: c.String("nats-creds"), NKeyFile: c.String("nats-nkey"),
		User: c.String("nats-user"), Password: c.String("nats-password"), Token: c.String("nats-token"),
		TLSCA: c.String("nats-tls-ca"), TLSCert: c.String("nats-tls-cert"), TLSKey: c.String("nats-tls-key"),
	}
}

// natsState is what a command's NATS connection reported: a permission
// violation aborts the command (its signalContext) and makes it exit 1.
type natsState struct {
	mu     sync.Mutex
	abort  context.CancelCauseFunc
	denied error
}

const natsStateKey = "shoal.nats"

func commandNATSState(app *cli.App) *natsState {
	if app.Metadata == nil {
		app.Metadata = map[string]any{}
	}
	st, ok := app.Metadata[natsStateKey].(*natsState)
	if !ok {
		st = &natsState{}
		app.Metadata[natsStateKey] = st
	}
	return st
}

// natsOutcome makes a command whose NATS user was denied a permission fail
// with that permission error, whatever else it returned.
func natsOutcome(app *cli.App, err error) error {
	st, ok := app.Metadata[natsStateKey].(*natsState)
	if !ok {
		return err
	}
	st.mu.Lock()
	denied := st.denied
	st.mu.Unlock()
	if denied == nil || errors.Is(err, fleet.ErrPermission) {
		return err
	}
	return actionError(denied)
}

func rootFlag() cli.Flag {
	return &cli.StringFlag{Name: "root", Usage: "directory holding the tenant DBs", EnvVars: []string{"SHOAL_ROOT"}}
}

func patternFlag() cli.Flag {
	return &cli.StringFlag{Name: "pattern", Value: tenants.DefaultPattern, Usage: "tenant DB paths relative to --root, filepath.Match rules per '/'-separated segment"}
}

func nodeFlag() cli.Flag {
	return &cli.StringFlag{Name: "node", Value: fleet.DefaultNode, Usage: "node name: jobs go to shoal.jobs.<node>, workers of that node take them", EnvVars: []string{"SHOAL_NODE"}}
}

func runIDFlag(usage string) cli.Flag {
	return &cli.StringFlag{Name: "run-id", Usage: usage, EnvVars: []string{"SHOAL_RUN_ID"}}
}

// nameFlags make every NATS name configurable.
func nameFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "jobs-stream", Value: fleet.DefaultJobsStream, Usage: "work-queue stream of jobs", EnvVars: []string{"SHOAL_JOBS_STREAM"}, Category: "NATS names"},
		&cli.StringFlag{Name: "results-stream", Value: fleet.DefaultResultsStream, Usage: "stream of results", EnvVars: []string{"SHOAL_RESULTS_STREAM"}, Category: "NATS names"},
		&cli.StringFlag{Name: "jobs-subject", Value: fleet.DefaultJobsPrefix, Usage: "subject prefix of jobs (<prefix>.<node>[.high])", EnvVars: []string{"SHOAL_JOBS_SUBJECT"}, Category: "NATS names"},
		&cli.StringFlag{Name: "results-subject", Value: fleet.DefaultResultsPrefix, Usage: "subject prefix of results (<prefix>.<run_id>)", EnvVars: []string{"SHOAL_RESULTS_SUBJECT"}, Category: "NATS names"},
		&cli.StringFlag{Name: "consumer", Value: fleet.DefaultConsumer, Usage: "durable consumer name prefix (<prefix>_<node>[_high])", EnvVars: []string{"SHOAL_CONSUMER"}, Category: "NATS names"},
	}
}

func consumerFlags() []cli.Flag {
	return []cli.Flag{
		&cli.DurationFlag{Name: "ack-wait", Value: fleet.DefaultAckWait, Usage: "redeliver a job whose worker sent no ack or heartbeat for this long"},
		&cli.IntFlag{Name: "max-deliver", Value: fleet.DefaultMaxDeliver, Usage: "attempts per job before its final result is failed"},
	}
}

func names(c *cli.Context) fleet.Names {
	get := func(flag, def string) string {
		if hasFlag(c, flag) && c.String(flag) != "" {
			return c.String(flag)
		}
		return def
	}
	return fleet.Names{
		JobsStream:    get("jobs-stream", fleet.DefaultJobsStream),
		ResultsStream: get("results-stream", fleet.DefaultResultsStream),
		JobsPrefix:    get("jobs-subject", fleet.DefaultJobsPrefix),
		ResultsPrefix: get("results-subject", fleet.DefaultResultsPrefix),
		Consumer:      get("consumer", fleet.DefaultConsumer),
	}
}

func settings(c *cli.Context) fleet.Settings {
	s := fleet.Settings{Names: names(c)}
	if hasFlag(c, "ack-wait") {
		s.AckWait = c.Duration("ack-wait")
	}
	if hasFlag(c, "max-deliver") {
		s.MaxDeliver = c.Int("max-deliver")
	}
	return s
}

func checkSettings(c *cli.Context) error {
	if hasFlag(c, "ack-wait") && c.Duration("ack-wait") < time.Second {
		return usageError("--ack-wait %s is too short: use 1s or more", c.Duration("ack-wait"))
	}
	if hasFlag(c, "keep") && c.Int("keep") < 0 {
		return usageError("--keep must be 0 or more, got %d", c.Int("keep"))
	}
	if hasFlag(c, "keep-for") && c.Duration("keep-for") < 0 {
		return usageError("--keep-for must be 0 or more, got %s", c.Duration("keep-for"))
	}
	if hasFlag(c, "max-deliver") && c.Int("max-deliver") < 1 {
		return usageError("--max-deliver must be 1 or more")
	}
	for _, f := range []string{"node", "run-id", "consumer"} {
		if isStringFlag(c, f) && c.String(f) != "" {
			if err := fleet.ValidName("--"+f, c.String(f)); err != nil {
				return usageError("%v", err)
			}
			// Run ids starting with '_' are shoal's own (results of
			// rejected jobs: `results --run-id _rejected`): readable, never
			// published under.
			if f == "run-id" && c.Command.Name != "results" {
				if err := fleet.ValidRunID(c.String(f)); err != nil {
					return usageError("--run-id: %v", err)
				}
			}
		}
	}
	if hasFlag(c, "pattern") {
		if err := tenants.ValidatePattern(c.String("pattern")); err != nil {
			return usageError("%v", err)
		}
	}
	return nil
}

// isStringFlag reports whether the command has a plain string flag name.
func isStringFlag(c *cli.Context, name string) bool {
	for _, f := range c.Command.Flags {
		if sf, ok := f.(*cli.StringFlag); ok && sf.Name == name {
			return true
		}
	}
	return false
}

// connectNATS connects to --nats with the --nats-* credentials, checks the
// server and JetStream. A permission the server denies later aborts the
// command's signalContext and makes it exit 1 with a *fleet.PermissionError.
func connectNATS(c *cli.Context, ctx context.Context, name string, opts ...nats.Option) (*nats.Conn, jetstream.JetStream, error) {
	st := commandNATSState(c.App)
	nc, js, err := fleet.Dial(ctx, fleet.DialOptions{
		URL: c.String("nats"), Name: name, Auth: natsAuth(c), NATS: opts,
		OnDenied: func(pe *fleet.PermissionError) {
			st.mu.Lock()
			if st.denied == nil {
				st.denied = pe
			}
			abort := st.abort
			st.mu.Unlock()
			if abort != nil {
				abort(pe)
			}
		},
	})
	if err != nil {
		return nil, nil, err
	}
	return nc, js, nil
}

// signalContext is cancelled by SIGINT or SIGTERM, or when the server
// denies the command's NATS user a permission (see connectNATS).
func signalContext(c *cli.Context) (context.Context, context.CancelFunc) {
	parent := c.Context
	if parent == nil {
		parent = context.Background()
	}
	st := commandNATSState(c.App)
	actx, abort := context.WithCancelCause(parent)
	st.mu.Lock()
	st.abort = abort
	st.mu.Unlock()
	ctx, stop := signal.NotifyContext(actx, os.Interrupt, syscall.SIGTERM)
	return ctx, func() { stop(); abort(nil) }
}

// waitRun follows a run's results until every tenant reported (or ctx
// ends), showing progress on stderr.
func waitRun(ctx context.Context, c *cli.Context, js jetstream.JetStream, nm fleet.Names, runID string, t *fleet.Tracker, knownTotal bool) error {
	pp := &progressPrinter{W: c.App.ErrWriter, TTY: isTerminal(c.App.ErrWriter), Interval: 5 * time.Second}
	every := time.Second
	if pp.TTY {
		every = 200 * time.Millisecond
	}
	err := fleet.Follow(ctx, js, nm, runID, t, fleet.FollowOptions{
		Follow: true, UntilComplete: true, NoManifest: knownTotal, TickEvery: every,
		Tick: func() { pp.Show(t.Progress(time.Now()), time.Now()) },
	})
	pp.Force(t.Progress(time.Now())) // final line, even off a TTY
	pp.Done()
	return err
}

// finishRun prints the summary of a followed run, writes --report and
// returns the exit error.
func finishRun(c *cli.Context, t *fleet.Tracker, reportPath string) error {
	return finishReport(c, t.StreamReport(time.Now()), reportPath)
}

// oneShotCache bounds the engine's at-head cache in commands that read each
// DB about twice in a row and never again (run, produce): the producer's
// version read, then its dry run or the worker's migration.
const oneShotCache = 1024

// oneShotMemoryLimit is the soft limit on the Go runtime's memory of the
// commands that follow a whole run (run, produce, results) when GOMEMLIMIT
// is not set: their live data is a few tens of MB at 100,000 tenants, and
// without a limit the heap grows to twice that between collections
// (measured: `run --visit-all` over 100,000 tenants, 199 MiB max RSS
// without, 120 MiB with). A soft limit: a run whose live data is larger
// just collects more often (the runtime bounds that CPU).
const oneShotMemoryLimit = 96 << 20

// oneShotGCPercent is the GC target of the same commands when GOGC is not
// set: the heap may grow half its live data between collections instead
// of all of it. Their live data grows with the fleet (about 130 bytes a
// tenant) while the rest does not, so the headroom is what made 100,000
// tenants cost more than 1.5x what 10,000 cost (`shoal run` re-check at
// head: 59 MiB max RSS at GOGC=100, 50 MiB at 50, against 33 MiB at
// 10,000), for no measurable time.
const oneShotGCPercent = 50

// softMemoryLimit applies oneShotMemoryLimit and oneShotGCPercent unless
// GOMEMLIMIT and GOGC say otherwise.
func softMemoryLimit() {
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(oneShotMemoryLimit)
	}
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(oneShotGCPercent)
	}
}

// reportFailures prints on stderr which DBs have no result or did not reach head.
func reportFailures(c *cli.Context, rep *fleet.Report) {
	if rep.Summary.Pending > 0 {
		fmt.Fprintf(c.App.ErrWriter, "shoal: %d of %d databases have no result yet (run `shoal results --run-id %s --follow` to keep watching)\n",
			rep.Summary.Pending, rep.Summary.Total, rep.RunID)
	}
	failed := rep.Failed()
	if len(failed) == 0 {
		return
	}
	ids := make([]string, 0, 11)
	for i, r := range failed {
		if i == 10 {
			ids = append(ids, fmt.Sprintf("and %d more", len(failed)-10))
			break
		}
		ids = append(ids, r.Tenant+" ("+r.Outcome+")")
	}
	fmt.Fprintf(c.App.ErrWriter, "shoal: %d databases not at head: %s\n", len(failed), strings.Join(ids, ", "))
}

// emptyHintFlag is what a deployment adds to the empty-fleet message (the
// compose file: where the tenant DBs must be put).
func emptyHintFlag() cli.Flag {
	return &cli.StringFlag{Name: "empty-hint", Hidden: true, EnvVars: []string{"SHOAL_EMPTY_HINT"},
		Usage: "added to the message for a --root where --pattern matches nothing"}
}

func allowEmptyFlag() cli.Flag {
	return &cli.BoolFlag{Name: "allow-empty", Usage: "exit 0 when --pattern matches no DB under --root"}
}

// emptyFleet is the exit-1 error for a --root where --pattern matched
// nothing: what matched nothing, files at another depth, the pattern for
// them.
func emptyFleet(c *cli.Context, root string) error {
	e := tenants.ExplainEmpty(root, c.String("pattern"))
	if hasFlag(c, "empty-hint") {
		e.Hint = c.String("empty-hint")
	}
	return e
}

// checkRoot fails (exit 1) unless --root is a readable directory.
func checkRoot(root string) error {
	return tenants.CheckRoot(root)
}

// checkReportPath makes sure --report can be written before any work
// starts (outfile.Check): not a directory, its directory exists and takes a
// new file, or it is a device or pipe this process may write.
func checkReportPath(path string) error {
	if path == "" {
		return nil
	}
	var noDir *outfile.NoDirError
	switch err := outfile.Check(path); {
	case err == nil:
		return nil
	case errors.Is(err, outfile.ErrIsDir):
		return failure(err, "--report %s is a directory: give a file name", path)
	case errors.As(err, &noDir):
		return failure(err, "--report %s: directory %s does not exist (create it, or write the report elsewhere)", path, noDir.Dir)
	default:
		return failure(err, "--report %s cannot be written: %v", path, err)
	}
}

// warnIdleNode warns once on stderr when jobs of the node wait in the queue
// while no worker pulls them (no waiting pull request, nothing being worked
// on), three looks in a row, the first after `after`. It returns when ctx
// ends, the pass completes or a worker is seen.
func warnIdleNode(ctx context.Context, c *cli.Context, js jetstream.JetStream, s fleet.Settings, node string, after time.Duration, t *fleet.Tracker) {
	select {
	case <-time.After(after):
	case <-ctx.Done():
		return
	}
	name := s.ConsumerName(node, false)
	idle := 0
	for {
		if t.Complete() {
			return
		}
		cons, err := js.Consumer(ctx, s.JobsStream, name)
		if err != nil {
			return
		}
		info, err := cons.Info(ctx)
		if err != nil {
			return
		}
		if info.NumWaiting > 0 || info.NumAckPending > 0 || info.Delivered.Consumer > 0 && info.NumPending == 0 {
			return // a worker pulls, works, or took everything
		}
		if info.NumPending > 0 {
			idle++
		}
		if idle == 3 {
			fmt.Fprintf(c.App.ErrWriter, "shoal: warning: %d jobs wait on %s and no worker pulls them: start `shoal work --node %s` (or check --node; workers of another node never take these jobs)\n",
				info.NumPending, s.JobSubject(node, false), node)
			return
		}
		select {
		case <-time.After(200 * time.Millisecond):
		case <-ctx.Done():
			return
		}
	}
}

// rolloutFlags are the canary wave and the halt of `run` and `produce`.
func rolloutFlags() []cli.Flag {
	const cat = "Rolling out safely"
	return []cli.Flag{
		&cli.IntFlag{Name: "canary", Category: cat, Usage: "migrate the first N tenants that need it first, alone; the rest only if all of them end migrated or current (0: no canary)"},
		&cli.StringFlag{Name: "canary-tenants", Category: cat, TakesFile: true, Usage: "file naming the canary tenants, one per line (relative to --root; # comments), instead of the first N"},
		&cli.IntFlag{Name: "max-failures", Category: cat, Usage: "halt the run once N tenants failed: nothing more is published or migrated, the rest end skipped (0: no halt)"},
	}
}

// maxCanaryFile bounds --canary-tenants.
const maxCanaryFile = 4 << 20

// rolloutOptions reads the rollout flags (usage errors for bad values).
func rolloutOptions(c *cli.Context) (canary int, tenants []string, maxFailures int, err error) {
	canary, maxFailures = c.Int("canary"), c.Int("max-failures")
	if canary < 0 {
		return 0, nil, 0, usageError("--canary must be 0 or more, got %d", canary)
	}
	if maxFailures < 0 {
		return 0, nil, 0, usageError("--max-failures must be 0 or more, got %d", maxFailures)
	}
	f := c.String("canary-tenants")
	if f == "" {
		return canary, nil, maxFailures, nil
	}
	if canary > 0 {
		return 0, nil, 0, usageError("--canary and --canary-tenants exclude each other: --canary takes the first N, --canary-tenants names them")
	}
	fh, err := os.Open(f)
	if err != nil {
		return 0, nil, 0, failure(err, "--canary-tenants: %v", err)
	}
	defer fh.Close()
	data, err := io.ReadAll(io.LimitReader(fh, maxCanaryFile+1))
	if err != nil {
		return 0, nil, 0, failure(err, "--canary-tenants: %v", err)
	}
	if len(data) > maxCanaryFile {
		return 0, nil, 0, usageError("--canary-tenants %s is larger than %d bytes", f, maxCanaryFile)
	}
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if err := fleet.CheckTenant(line); err != nil {
			return 0, nil, 0, usageError("--canary-tenants %s line %d: %v", f, i+1, err)
		}
		tenants = append(tenants, line)
	}
	if len(tenants) == 0 {
		return 0, nil, 0, usageError("--canary-tenants %s names no tenant", f)
	}
	return 0, tenants, maxFailures, nil
}
