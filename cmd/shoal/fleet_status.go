package main

import (
	"context"
	"fmt"
	"sort"
	"strconv"

	"github.com/shoal-dev/shoal/engine"
	"github.com/shoal-dev/shoal/schema"
	"github.com/shoal-dev/shoal/tenants"
	"github.com/urfave/cli/v2"
)

func fleetStatusCommand() *cli.Command {
	return &cli.Command{
		Name:  "status",
		Usage: "read every tenant DB's version under --root (no write lock) and count them by version",
		Description: "Prints how many DBs are at each version and which are behind, ahead, unmanaged or\n" +
			"corrupt. Exits 1 if any DB is not at head, and if --pattern matches nothing under --root\n" +
			"(unless --allow-empty).\n\n" +
			"Example: shoal fleet status --root /srv/tenants --json",
		Flags: []cli.Flag{
			rootFlag(), patternFlag(), dirFlag(), busyTimeoutFlag(),
			&cli.IntFlag{Name: "concurrency", Value: 8, Usage: "DBs read at once"},
			&cli.BoolFlag{Name: "json", Usage: "print one JSON object"},
			allowEmptyFlag(),
			&cli.BoolFlag{Name: "verify", Usage: "also compare each DB at head with head's schema and list those that drifted (slower: reads every schema)"},
			&cli.StringFlag{Name: "backup-dir", Usage: "also show the disk taken by shoal's backups under this directory (the workers' --backup-dir)"},
		},
		Action: fleetStatusAction,
	}
}

func fleetStatusAction(c *cli.Context) error {
	root, err := requireString(c, "root", "SHOAL_ROOT")
	if err != nil {
		return err
	}
	if err := checkSettings(c); err != nil {
		return err
	}
	if err := checkRoot(root); err != nil {
		return err
	}
	env, err := newFleetEnv(c, envSpec{engine: true})
	if err != nil {
		return err
	}
	defer env.Close()
	e, ctx := env.e, env.ctx
	e.SetAtHeadCache(-1) // one pass: no path is read twice
	st, err := tenants.Status(ctx, cliTermsEngine{schema.Verifier{Engine: e}}, root, c.String("pattern"), c.Int("concurrency"), c.Bool("verify"))
	if err != nil {
		return err
	}
	if d := c.String("backup-dir"); d != "" {
		n, b, err := engine.BackupUsage(d)
		if err != nil {
			return failure(err, "--backup-dir %s: %v", d, err)
		}
		st.Backups = &tenants.BackupUsage{Dir: d, Count: n, Bytes: b}
	}
	if c.Bool("json") {
		printJSON(c, st)
	} else {
		printFleetStatus(c, st)
	}
	if st.Total == 0 && !c.Bool("allow-empty") {
		return emptyFleet(c, root)
	}
	if !st.AtHead() {
		n := len(st.Behind) + len(st.Ahead) + len(st.Unmanaged) + len(st.Corrupt) + len(st.Errors) + len(st.Drifted)
		return failure(nil, "%d of %d databases not at head %d or not readable (run `shoal produce --only-behind` or `shoal run` for those behind)", n, st.Total, st.Head)
	}
	return nil
}

// humanBytes renders a size: 512 B, 1.5 KiB, 3.2 GiB.
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// printFleetStatus prints a fleet status for people: the count per version,
// the DBs that are not at head (50 of each kind) and the backups' disk use.
func printFleetStatus(c *cli.Context, st *tenants.FleetStatus) {
	printf(c, "head %d, %d databases\n", st.Head, st.Total)
	vs := make([]int64, 0, len(st.Versions))
	for k := range st.Versions {
		v, _ := strconv.ParseInt(k, 10, 64)
		vs = append(vs, v)
	}
	sort.Slice(vs, func(i, j int) bool { return vs[i] < vs[j] })
	for _, v := range vs {
		mark := ""
		switch {
		case v == st.Head:
			mark = " (head)"
		case v < st.Head:
			mark = " (behind)"
		default:
			mark = " (ahead)"
		}
		printf(c, "  version %d: %d%s\n", v, st.Versions[strconv.FormatInt(v, 10)], mark)
	}
	list := func(name string, l []string) {
		if len(l) == 0 {
			return
		}
		printf(c, "%s (%d):\n", name, len(l))
		for i, t := range l {
			if i == 50 {
				printf(c, "  ... and %d more (use --json)\n", len(l)-50)
				break
			}
			printf(c, "  %s\n", t)
		}
	}
	list("behind", st.Behind)
	list("ahead", st.Ahead)
	list("unmanaged", st.Unmanaged)
	list("corrupt", st.Corrupt)
	list("unreadable", st.Errors)
	list("drifted (schema differs from its version)", st.Drifted)
	if b := st.Backups; b != nil {
		printf(c, "backups in %s: %d files, %s (prune with `shoal backup prune --dir %s`)\n", b.Dir, b.Count, humanBytes(b.Bytes), b.Dir)
	}
}

// cliTermsEngine is the engine fleet status reads versions with: an
// engine error's hint in the CLI's words (cliTerms), as the single-DB
// commands print it, still errors.Is/As its kind for the status lists.
type cliTermsEngine struct{ statusEngine }

// statusEngine is what fleet status needs of its engine (schema.Verifier).
type statusEngine interface {
	tenants.Versioner
	tenants.DriftChecker
}

func (c cliTermsEngine) Version(ctx context.Context, path string) (int64, error) {
	v, err := c.statusEngine.Version(ctx, path)
	if err != nil {
		if msg := cliTerms(err); msg != err.Error() {
			err = &termsError{msg: msg, err: err}
		}
	}
	return v, err
}

// termsError is err said in other words.
type termsError struct {
	msg string
	err error
}

func (e *termsError) Error() string { return e.msg }
func (e *termsError) Unwrap() error { return e.err }
