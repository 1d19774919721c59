package schema

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/engine"
)

// Figures for docs/schema.md; run with SHOAL_FIGURES=1:
//
//	SHOAL_FIGURES=1 go test ./engine -run 'TestFigure' -v
func figures(t *testing.T) {
	if os.Getenv("SHOAL_FIGURES") == "" {
		t.Skip("set SHOAL_FIGURES=1")
	}
}

// TestFigureRebuild: RebuildTable on a 1,000,000-row table with two indexes
// and a child table, against a bare INSERT INTO copy SELECT + the two
// CREATE INDEX, each in one engine run.
func TestFigureRebuild(t *testing.T) {
	figures(t)
	const rows, children = 1_000_000, 200_000
	base := `CREATE TABLE p (id INTEGER PRIMARY KEY, a TEXT, b INTEGER, c TEXT);
CREATE INDEX p_a ON p(a);
CREATE INDEX p_b ON p(b);
CREATE TABLE ch (id INTEGER PRIMARY KEY, pid INTEGER REFERENCES p(id) ON DELETE CASCADE);
CREATE INDEX ch_pid ON ch(pid);
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ` + fmt.Sprint(rows) + `)
INSERT INTO p SELECT i, 'name ' || i, i % 1000, hex(randomblob(16)) FROM n;
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ` + fmt.Sprint(children) + `)
INSERT INTO ch SELECT i, i * 5 FROM n;`
	newSQL := "CREATE TABLE p (id INTEGER PRIMARY KEY, a TEXT NOT NULL DEFAULT '', b INTEGER CHECK (b >= 0), c TEXT)"
	bare := []string{
		"CREATE TABLE p_copy (id INTEGER PRIMARY KEY, a TEXT NOT NULL DEFAULT '', b INTEGER CHECK (b >= 0), c TEXT)",
		"INSERT INTO p_copy SELECT id, a, b, c FROM p",
		"CREATE INDEX p_copy_a ON p_copy(a)",
		"CREATE INDEX p_copy_b ON p_copy(b)",
	}
	seed := filepath.Join(t.TempDir(), "seed.db")
	e0 := newEngine(t, map[string]string{"0001_base.sql": base})
	if _, err := e0.Migrate(ctx(t), seed, engine.MigrateOptions{}); err != nil {
		t.Fatal(err)
	}
	run := func(name string, up engine.GoFunc) time.Duration {
		var best time.Duration
		for i := range 3 {
			db := filepath.Join(t.TempDir(), fmt.Sprintf("%s%d.db", name, i))
			copyFile(t, seed, db)
			e, err := engine.New(engine.Options{Dir: dir(map[string]string{"0001_base.sql": base}), Go: []engine.GoMigration{{Version: 2, Name: name, Up: up}}})
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			if _, err := e.Migrate(ctx(t), db, engine.MigrateOptions{}); err != nil {
				t.Fatal(err)
			}
			if d := time.Since(start); best == 0 || d < best {
				best = d
			}
			if name == "rebuild" && queryInt(t, db, "SELECT count(*) FROM ch") != children {
				t.Fatal("children lost")
			}
		}
		return best
	}
	r := run("rebuild", func(ctx context.Context, tx *sql.Tx) error { return RebuildTable(ctx, tx, "p", newSQL) })
	b := run("bare", func(ctx context.Context, tx *sql.Tx) error {
		for _, s := range bare {
			if _, err := tx.ExecContext(ctx, s); err != nil {
				return err
			}
		}
		return nil
	})
	t.Logf("rebuild of %d rows, 2 indexes, %d children: RebuildTable %v, bare copy + 2 indexes %v, ratio %.2f",
		rows, children, r.Round(time.Millisecond), b.Round(time.Millisecond), float64(r)/float64(b))
}

// TestFigureCheck200: Check on a directory of 200 migrations with down
// sections (tables, columns, indexes, a view rebuilt now and then).
func TestFigureCheck200(t *testing.T) {
	figures(t)
	files := map[string]string{}
	for i := 1; i <= 200; i++ {
		var up, down string
		switch i % 4 {
		case 1:
			up = fmt.Sprintf("CREATE TABLE t%d (id INTEGER PRIMARY KEY, a TEXT);", i)
			down = fmt.Sprintf("DROP TABLE t%d;", i)
		case 2:
			up = fmt.Sprintf("ALTER TABLE t%d ADD COLUMN b INTEGER;", i-1)
			down = fmt.Sprintf("ALTER TABLE t%d DROP COLUMN b;", i-1)
		case 3:
			up = fmt.Sprintf("CREATE INDEX t%d_a ON t%d(a);", i-2, i-2)
			down = fmt.Sprintf("DROP INDEX t%d_a;", i-2)
		case 0:
			up = fmt.Sprintf("CREATE VIEW v%d AS SELECT id, a, b FROM t%d;", i, i-3)
			down = fmt.Sprintf("DROP VIEW v%d;", i)
		}
		files[fmt.Sprintf("%04d_m%d.sql", i, i)] = "-- migrate:up\n" + up + "\n-- migrate:down\n" + down + "\n"
	}
	for _, rt := range []bool{false, true} {
		start := time.Now()
		rep, err := Check(ctx(t), CheckOptions{Options: engine.Options{Dir: dir(files)}, NoRoundTrip: !rt})
		if err != nil || !rep.OK {
			t.Fatalf("%v %+v", err, rep)
		}
		t.Logf("check of 200 migrations (round trip %v): %v", rt, time.Since(start).Round(time.Millisecond))
	}
}
