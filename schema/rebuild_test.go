package schema

import (
	"context"
	"database/sql"
	"testing"

	"github.com/shoal-dev/shoal/engine"
)

// A view that depends on a view of the rebuilt table: SQLite's RENAME
// checks every view, so the dependent view must be set aside too, and both
// come back.
func TestRebuildTableChainedViews(t *testing.T) {
	base := `CREATE TABLE p (id INTEGER PRIMARY KEY, name TEXT, junk TEXT);
CREATE VIEW pv AS SELECT id, name FROM p;
CREATE VIEW pv2 AS SELECT name FROM pv;
CREATE TABLE q (x);
CREATE TRIGGER q_ins AFTER INSERT ON q BEGIN SELECT name FROM pv2; END;
INSERT INTO p (name, junk) VALUES ('a', 'x');`
	newSQL := "CREATE TABLE p (id INTEGER PRIMARY KEY, name TEXT NOT NULL)"
	e, err := engine.New(engine.Options{Dir: dir(map[string]string{"0001_base.sql": base}), Go: []engine.GoMigration{{Version: 2, Name: "rebuild_p",
		Up: func(ctx context.Context, tx *sql.Tx) error { return RebuildTable(ctx, tx, "p", newSQL) }}}})
	if err != nil {
		t.Fatal(err)
	}
	db := tempDB(t)
	if _, err := e.Migrate(ctx(t), db, engine.MigrateOptions{}); err != nil {
		t.Fatal(err)
	}
	if queryInt(t, db, "SELECT count(*) FROM pv2") != 1 || queryInt(t, db, "SELECT count(*) FROM sqlite_schema WHERE name IN ('pv', 'pv2', 'q_ins')") != 3 {
		t.Fatal("views or trigger lost")
	}
}
