package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"

	"github.com/shoal-dev/shoal/engine"
	"github.com/urfave/cli/v2"
)

// fromFlag names the tool whose history `enroll` takes over.
func fromFlag() cli.Flag {
	return &cli.StringFlag{Name: "from", Usage: "take over this tool's history table (default: detect): " + strings.Join(engine.AdoptTools(), ", ")}
}

// alembicMapFlag is the map of Alembic revision ids to versions.
func alembicMapFlag() cli.Flag {
	return &cli.StringFlag{Name: "map", Usage: "with --from alembic: a file of \"REVISION VERSION\" lines mapping Alembic revision ids to migration versions"}
}

// maxMapFile bounds the Alembic map file.
const maxMapFile = 1 << 20

// enrollOptions reads --version, --from and --map.
func enrollOptions(c *cli.Context) (engine.EnrollOptions, error) {
	o := engine.EnrollOptions{Version: c.Int64("version"), From: c.String("from")}
	if o.From != "" && !knownTool(o.From) {
		return o, usageError("unknown --from %q: use one of %s", o.From, strings.Join(engine.AdoptTools(), ", "))
	}
	if p := c.String("map"); p != "" {
		m, err := readAlembicMap(p)
		if err != nil {
			return o, failure(err, "--map %s: %v", p, err)
		}
		o.AlembicMap = m
	}
	return o, nil
}

func knownTool(name string) bool {
	for _, t := range engine.AdoptTools() {
		if strings.EqualFold(t, name) {
			return true
		}
	}
	return false
}

// readAlembicMap reads a map file: a regular file (no symlink followed),
// at most maxMapFile bytes.
func readAlembicMap(path string) (map[string]int64, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if st, err := f.Stat(); err != nil {
		return nil, err
	} else if !st.Mode().IsRegular() {
		return nil, errors.New("not a regular file")
	}
	data, err := io.ReadAll(io.LimitReader(f, maxMapFile+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxMapFile {
		return nil, fmt.Errorf("larger than %d bytes", maxMapFile)
	}
	return engine.ParseAlembicMap(data)
}

// adoptFlag makes a fleet run take over other tools' histories on first
// contact.
func adoptFlag() cli.Flag {
	return &cli.BoolFlag{Name: "adopt", Usage: "take over another migration tool's history (goose, golang-migrate, ... see shoal enroll --from) in DBs shoal does not manage yet, then migrate them; their outcome is adopted"}
}
