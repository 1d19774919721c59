package main

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"strconv"

	"github.com/shoal-dev/shoal/engine"
	"github.com/shoal-dev/shoal/fleet"
	"github.com/shoal-dev/shoal/tenants"
	"github.com/urfave/cli/v2"
)

// enrollEntry is one tenant's line in a fleet enroll report.
type enrollEntry struct {
	Tenant string `json:"tenant"`
	Path   string `json:"path"`
	// Outcome: "enrolled", "managed" (already shoal's, untouched), "refused"
	// (schema differs; Error says how), "error".
	Outcome string  `json:"outcome"`
	Version *int64  `json:"version"`
	Source  *string `json:"source"`
	Error   *string `json:"error"`
}

type enrollReport struct {
	Total     int           `json:"total"`
	Enrolled  int           `json:"enrolled"`
	Managed   int           `json:"managed"`
	Refused   int           `json:"refused"`
	Errors    int           `json:"errors"`
	Databases []enrollEntry `json:"databases"`
}

func fleetEnrollCommand() *cli.Command {
	return &cli.Command{
		Name:  "enroll",
		Usage: "adopt every unmanaged tenant DB under --root whose schema matches the migrations",
		Description: "Runs `shoal enroll` on each DB that has tables and no shoal history; DBs shoal\n" +
			"already manages are left alone. Writes a report (--report) with one entry per DB and\n" +
			"exits 1 if any DB could not be enrolled.\n\n" +
			"Example: shoal fleet enroll --root /srv/tenants --report enroll.json",
		Flags: []cli.Flag{
			rootFlag(), patternFlag(), dirFlag(), busyTimeoutFlag(),
			&cli.Int64Flag{Name: "version", Usage: "the version every DB is at (default: detect per DB)"},
			fromFlag(), alembicMapFlag(),
			&cli.StringFlag{Name: "report", Usage: "write the JSON report to this file"},
			&cli.BoolFlag{Name: "json", Usage: "print the report on stdout"},
		},
		Action: fleetEnrollAction,
	}
}

func fleetEnrollAction(c *cli.Context) error {
	root, err := requireString(c, "root", "SHOAL_ROOT")
	if err != nil {
		return err
	}
	if err := tenants.ValidatePattern(c.String("pattern")); err != nil {
		return usageError("%v", err)
	}
	env, err := newFleetEnv(c, envSpec{engine: true})
	if err != nil {
		return err
	}
	defer env.Close()
	e, ctx := env.e, env.ctx
	rep := enrollReport{Databases: []enrollEntry{}}
	err = tenants.Walk(ctx, root, c.String("pattern"), func(tenant, path string) error {
		ent := enrollOne(ctx, c, e, tenant, path)
		rep.Total++
		switch ent.Outcome {
		case "enrolled":
			rep.Enrolled++
		case "managed":
			rep.Managed++
		case "refused":
			rep.Refused++
		default:
			rep.Errors++
		}
		rep.Databases = append(rep.Databases, ent)
		if !c.Bool("json") && ent.Outcome != "managed" {
			line := ent.Outcome
			if ent.Version != nil {
				line += " at version " + itoa(*ent.Version)
			}
			if ent.Error != nil {
				line += ": " + firstLine(*ent.Error)
			}
			printf(c, "%s: %s\n", tenant, line)
		}
		return nil
	})
	if err != nil {
		return failure(err, "walking %s: %v", root, err)
	}
	if p := c.String("report"); p != "" {
		b, _ := json.MarshalIndent(rep, "", "  ")
		if err := os.WriteFile(p, append(b, '\n'), 0o644); err != nil {
			return failure(err, "cannot write the report %s: %v", p, err)
		}
	}
	if c.Bool("json") {
		printJSON(c, rep)
	} else {
		printf(c, "%d databases: %d enrolled, %d already managed, %d refused, %d errors\n",
			rep.Total, rep.Enrolled, rep.Managed, rep.Refused, rep.Errors)
	}
	if rep.Refused+rep.Errors > 0 {
		return failure(nil, "%d of %d databases could not be enrolled (see the report; `shoal enroll --db PATH` shows the differences)", rep.Refused+rep.Errors, rep.Total)
	}
	return nil
}

func enrollOne(ctx context.Context, c *cli.Context, e *engine.Engine, tenant, path string) enrollEntry {
	ent := enrollEntry{Tenant: tenant, Path: path}
	if _, err := e.Version(ctx, path); err == nil {
		ent.Outcome = "managed"
		return ent
	} else if !errors.Is(err, engine.ErrUnmanaged) {
		ent.Outcome, ent.Error = "error", fleet.String(err.Error())
		return ent
	}
	eo, err := enrollOptions(c)
	if err != nil {
		ent.Outcome, ent.Error = "error", fleet.String(err.Error())
		return ent
	}
	en, err := e.EnrollWith(ctx, path, eo)
	switch {
	case err == nil:
		ent.Outcome, ent.Version, ent.Source = "enrolled", fleet.Int64(en.Version), fleet.String(en.Source)
	case errors.Is(err, engine.ErrEnroll):
		ent.Outcome, ent.Error = "refused", fleet.String(err.Error())
	default:
		ent.Outcome, ent.Error = "error", fleet.String(err.Error())
	}
	return ent
}

func itoa(v int64) string { return strconv.FormatInt(v, 10) }
