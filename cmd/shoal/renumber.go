package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/shoal-dev/shoal/engine"
	"github.com/shoal-dev/shoal/schema"
	"github.com/urfave/cli/v2"
)

func renumberCommand() *cli.Command {
	return &cli.Command{
		Name:      "renumber",
		Usage:     "move the newer of two migrations with the same version to the next free version",
		UsageText: "shoal renumber [--dir DIR] [FILE...]",
		Description: "After merging two branches that each added a migration with the same version, moves\n" +
			"the newer file to the highest version + 1 (keeping its digits' width) and rewrites the\n" +
			"sum file. The newer one is the file that the sum file does not list on our side (the\n" +
			"branch merged into); else the one git added last (uncommitted counts as newest); else the\n" +
			"one modified last. Name FILEs to choose yourself. A moved migration that was already\n" +
			"applied to a DB (a dev DB) makes that DB `ahead`: recreate it.",
		Flags:  []cli.Flag{dirFlag()},
		Action: renumberAction,
	}
}

func renumberAction(c *cli.Context) error {
	dir := diskDir(c)
	fsys, err := engine.OpenDir(dir)
	if err != nil {
		return err
	}
	files, err := schema.ListMigrationFiles(fsys)
	if err != nil {
		return failure(err, "migrations directory %s: %v", dir, err)
	}
	byFile := map[string]schema.MigrationFile{}
	groups := map[int64][]schema.MigrationFile{}
	var maxV int64
	for _, f := range files {
		byFile[f.File] = f
		groups[f.Name.Version] = append(groups[f.Name.Version], f)
		maxV = max(maxV, f.Name.Version)
	}
	var move []schema.MigrationFile
	if c.NArg() > 0 {
		for _, a := range c.Args().Slice() {
			f, ok := byFile[filepath.Base(a)]
			if !ok {
				return usageError("%s is not a migration file in %s", a, dir)
			}
			move = append(move, f)
		}
	} else {
		sumData, _ := os.ReadFile(filepath.Join(dir, engine.SumFile))
		ours := schema.SumSides(sumData)
		versions := make([]int64, 0, len(groups))
		for v, g := range groups {
			if len(g) > 1 {
				versions = append(versions, v)
			}
		}
		sort.Slice(versions, func(i, j int) bool { return versions[i] < versions[j] })
		for _, v := range versions {
			move = append(move, newerOf(dir, groups[v], ours)...)
		}
	}
	if len(move) == 0 {
		printf(c, "%s: no two migrations share a version; nothing to renumber\n", dir)
		return nil
	}
	for _, f := range move {
		maxV++
		n := f.Name
		n.Version = maxV
		to := n.String()
		if _, err := os.Lstat(filepath.Join(dir, to)); err == nil {
			return failure(nil, "cannot move %s: %s already exists", f.File, to)
		}
		if err := os.Rename(filepath.Join(dir, f.File), filepath.Join(dir, to)); err != nil {
			return failure(err, "cannot rename %s: %v", f.File, err)
		}
		printf(c, "%s -> %s\n", filepath.Join(dir, f.File), filepath.Join(dir, to))
	}
	if _, err := schema.WriteSum(dir); err != nil {
		return failure(err, "renamed, but cannot write %s: %v (run `shoal hash`)", engine.SumFile, err)
	}
	printf(c, "%s: rewritten; run `shoal check`, and recreate any dev DB that had a moved migration applied\n", filepath.Join(dir, engine.SumFile))
	return nil
}

// newerOf picks the files of one version to move, keeping the oldest.
func newerOf(dir string, group []schema.MigrationFile, ours map[string]bool) []schema.MigrationFile {
	var kept, others []schema.MigrationFile
	for _, f := range group {
		if ours[f.File] {
			kept = append(kept, f)
		} else {
			others = append(others, f)
		}
	}
	if len(kept) == 1 {
		return others
	}
	// Order by age: git's time of the commit that added the file
	// (uncommitted: newest), then modification time, then name.
	type aged struct {
		f          schema.MigrationFile
		added, mod int64
	}
	as := make([]aged, len(group))
	for i, f := range group {
		as[i] = aged{f: f, added: gitAdded(dir, f.File)}
		if st, err := os.Stat(filepath.Join(dir, f.File)); err == nil {
			as[i].mod = st.ModTime().UnixNano()
		}
	}
	sort.SliceStable(as, func(i, j int) bool {
		if as[i].added != as[j].added {
			return as[i].added < as[j].added
		}
		if as[i].mod != as[j].mod {
			return as[i].mod < as[j].mod
		}
		return as[i].f.File < as[j].f.File
	})
	out := make([]schema.MigrationFile, 0, len(as)-1)
	for _, a := range as[1:] {
		out = append(out, a.f)
	}
	return out
}

// gitAdded is the commit time of the commit that added file, or max int64
// when git does not know it (no git, not a repository, not committed).
func gitAdded(dir, file string) int64 {
	cmd := exec.Command("git", "log", "--diff-filter=A", "--format=%ct", "-1", "--", file)
	cmd.Dir = dir
	var out bytes.Buffer
	cmd.Stdout = &out
	if err := cmd.Run(); err != nil {
		return 1<<63 - 1
	}
	v, err := strconv.ParseInt(strings.TrimSpace(out.String()), 10, 64)
	if err != nil {
		return 1<<63 - 1
	}
	return v
}
