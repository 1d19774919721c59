package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/shoal-dev/shoal/engine"
	"github.com/urfave/cli/v2"
)

func demoFleetCommand() *cli.Command {
	return &cli.Command{
		Name:  "demo-fleet",
		Usage: "create N example tenant DBs under --root (fresh files and DBs at older versions)",
		Description: "Makes <root>/tenant-NNNN/app.db: every third one a fresh empty file, the others migrated\n" +
			"to an older version than head, so `shoal run --root DIR` has work to do.\n\n" +
			"Example: shoal demo-fleet --root ./tenants --tenants 200 && shoal run --root ./tenants",
		Flags: []cli.Flag{
			rootFlag(), dirFlag(),
			&cli.IntFlag{Name: "tenants", Value: 100, Usage: "number of tenant DBs"},
			&cli.BoolFlag{Name: "force", Usage: "overwrite existing tenant DBs"},
		},
		Action: demoFleetAction,
	}
}

// demoVersion is the version tenant i is left at (0: a fresh empty file).
func demoVersion(i int, head int64) int64 {
	if head <= 1 || i%3 == 0 {
		return 0
	}
	return 1 + int64(i)%(head-1)
}

func demoFleetAction(c *cli.Context) error {
	root, err := requireString(c, "root", "SHOAL_ROOT")
	if err != nil {
		return err
	}
	n := c.Int("tenants")
	if n < 1 {
		return usageError("--tenants must be 1 or more")
	}
	e, err := openEngine(c)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return failure(err, "cannot create --root %s: %v", root, err)
	}
	head := e.Head()
	counts := map[int64]int{}
	for i := range n {
		dir := filepath.Join(root, fmt.Sprintf("tenant-%04d", i+1))
		path := filepath.Join(dir, "app.db")
		if _, err := os.Stat(path); err == nil && !c.Bool("force") {
			return failure(nil, "%s exists: use --force to overwrite, or another --root", path)
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		for _, sfx := range []string{"", "-wal", "-shm", "-journal"} {
			os.Remove(path + sfx)
		}
		v := demoVersion(i, head)
		if v == 0 {
			if err := os.WriteFile(path, nil, 0o644); err != nil {
				return err
			}
		} else if _, err := e.Migrate(c.Context, path, engine.MigrateOptions{To: v}); err != nil {
			return failure(err, "%s: %v", path, err)
		}
		counts[v]++
	}
	printf(c, "created %d tenant DBs under %s (head %d):", n, root, head)
	for v := int64(0); v <= head; v++ {
		if counts[v] > 0 {
			if v == 0 {
				printf(c, " %d fresh", counts[v])
			} else {
				printf(c, ", %d at version %d", counts[v], v)
			}
		}
	}
	printf(c, "\nnext: shoal run --root %s\n", root)
	return nil
}
