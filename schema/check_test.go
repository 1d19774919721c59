package schema

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/shoal-dev/shoal/engine"
)

func check(t *testing.T, o CheckOptions) *CheckReport {
	t.Helper()
	rep, err := Check(ctx(t), o)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Problems == nil || rep.Lint == nil {
		t.Fatal("lists must be empty, never nil")
	}
	return rep
}

func TestCheckExampleMigrationsOK(t *testing.T) {
	files := map[string]string{
		"0001_a.sql": "-- migrate:up\n" + usersNotes + "CREATE INDEX notes_user ON notes(user_id);\n-- migrate:down\nDROP TABLE notes;\nDROP TABLE users;\n",
		"0002_b.sql": "-- migrate:up\nCREATE VIEW v AS SELECT id FROM users;\n-- migrate:down\nDROP VIEW v;\n",
	}
	rep := check(t, CheckOptions{Options: engine.Options{Dir: dir(files)}})
	if !rep.OK || rep.Migrations != 2 || rep.Head != 2 || len(rep.Problems) != 0 {
		t.Fatalf("%+v", rep)
	}
}

func TestCheckDirectoryProblem(t *testing.T) {
	rep := check(t, CheckOptions{Options: engine.Options{Dir: dir(map[string]string{"0001_a.sql": "CREATE TABLE a (x);", "001_b.sql": "CREATE TABLE b (x);"})}})
	if rep.OK || len(rep.Problems) != 1 || rep.Problems[0].Kind != ProblemDirectory || !strings.Contains(rep.Problems[0].Message, "renumber") {
		t.Fatalf("%+v", rep)
	}
	rep = check(t, CheckOptions{Options: engine.Options{Dir: dir(map[string]string{"0001_a.sql": "-- migrate:down\nDROP TABLE a;\n-- migrate:up\nCREATE TABLE a (x);"})}})
	if rep.OK || rep.Problems[0].Kind != ProblemDirectory || rep.Problems[0].File != "0001_a.sql" {
		t.Fatalf("%+v", rep)
	}
}

func TestCheckApplyErrorNamesFileAndLine(t *testing.T) {
	files := map[string]string{
		"0001_a.sql": "CREATE TABLE a (x);",
		"0002_b.sql": "-- comment\nCREATE TABLE b (x);\n\nINSERT INTO nosuch VALUES (1);\n",
		"0003_c.sql": "DROP TABLE a;",
	}
	rep := check(t, CheckOptions{Options: engine.Options{Dir: dir(files)}})
	if rep.OK || len(rep.Problems) != 1 {
		t.Fatalf("%+v", rep)
	}
	p := rep.Problems[0]
	if p.Kind != ProblemApply || p.File != "0002_b.sql" || p.Line != 4 || !strings.Contains(p.Message, "no such table: nosuch") {
		t.Fatalf("%+v", p)
	}
	if strings.Contains(p.Message, "check.db") {
		t.Fatalf("the scratch path leaks into the message: %s", p.Message)
	}
	// Migrations after the failing one are still linted (without schema facts).
	if len(rep.Lint) != 1 || rep.Lint[0].File != "0003_c.sql" || rep.Lint[0].Code != LintDropTable {
		t.Fatalf("%+v", rep.Lint)
	}
}

func TestCheckRoundTrip(t *testing.T) {
	// The down section forgets the index: down does not restore version 1.
	files := map[string]string{
		"0001_a.sql": "-- migrate:up\nCREATE TABLE a (x);\n-- migrate:down\nDROP TABLE a;\n",
		"0002_b.sql": "-- migrate:up\nCREATE TABLE b (y);\nCREATE INDEX by ON b(y);\nCREATE INDEX ax ON a(x);\n-- migrate:down\nDROP TABLE b;\n",
	}
	rep := check(t, CheckOptions{Options: engine.Options{Dir: dir(files)}})
	if rep.OK || len(rep.Problems) != 1 || rep.Problems[0].Kind != ProblemRoundTrip || rep.Problems[0].File != "0002_b.sql" ||
		len(rep.Problems[0].Diffs) != 1 || rep.Problems[0].Diffs[0].Name != "ax" {
		t.Fatalf("%+v", rep)
	}
	// A failing down section names its line.
	files["0002_b.sql"] = "-- migrate:up\nCREATE TABLE b (y);\n-- migrate:down\nDROP TABLE b;\nDROP TABLE nosuch;\n"
	rep = check(t, CheckOptions{Options: engine.Options{Dir: dir(files)}})
	if rep.OK || rep.Problems[0].Kind != ProblemRoundTrip || rep.Problems[0].Line != 5 {
		t.Fatalf("%+v", rep)
	}
	// Down stops at the newest irreversible migration: 0001 has no down,
	// 0002's down is only checked against version 1.
	files = map[string]string{
		"0001_a.sql": "CREATE TABLE a (x);",
		"0002_b.sql": "-- migrate:up\nCREATE TABLE b (y);\n-- migrate:down\nDROP TABLE b;\n",
	}
	rep = check(t, CheckOptions{Options: engine.Options{Dir: dir(files)}})
	if !rep.OK {
		t.Fatalf("%+v", rep)
	}
	files["0002_b.sql"] = "-- migrate:up\nCREATE TABLE b (y);\n-- migrate:down\nDROP TABLE b;\nDROP TABLE a;\n"
	rep = check(t, CheckOptions{Options: engine.Options{Dir: dir(files)}})
	if rep.OK || rep.Problems[0].Kind != ProblemRoundTrip || rep.Problems[0].Diffs[0].Name != "a" {
		t.Fatalf("%+v", rep)
	}
}

func TestCheckSchemaFile(t *testing.T) {
	files := map[string]string{
		"0001_a.sql": "CREATE TABLE a (x INTEGER, y TEXT);",
		// A rebuild: SQLite's rename writes CREATE TABLE "a".
		"0002_b.sql": "CREATE TABLE a_new (x INTEGER, y TEXT NOT NULL DEFAULT '');\nINSERT INTO a_new SELECT x, coalesce(y, '') FROM a;\nDROP TABLE a;\nALTER TABLE a_new RENAME TO a;",
	}
	o := CheckOptions{Options: engine.Options{Dir: dir(files)}, HasSchema: true, SchemaName: "schema.sql"}
	o.Schema = []byte("-- hand-written\nCREATE TABLE a (\n  x INTEGER,\n  y TEXT NOT NULL DEFAULT ''\n);\n")
	if rep := check(t, o); !rep.OK {
		t.Fatalf("same schema, other layout and quoting: %+v", rep)
	}
	o.Schema = []byte("CREATE TABLE a (x INTEGER, y TEXT NOT NULL DEFAULT '', z);\nCREATE INDEX ax ON a(x);\n")
	rep := check(t, o)
	if rep.OK || len(rep.Problems) != 1 || rep.Problems[0].Kind != ProblemSchema || len(rep.Problems[0].Diffs) != 2 {
		t.Fatalf("%+v", rep)
	}
	o.Schema = []byte("CREATE TABLE a (x);\nCREATE TABLE a (x);\n")
	rep = check(t, o)
	if rep.OK || rep.Problems[0].Kind != ProblemSchema || rep.Problems[0].Line != 2 {
		t.Fatalf("%+v", rep)
	}
}

func TestCheckSumFile(t *testing.T) {
	files := dir(map[string]string{"0001_a.sql": "CREATE TABLE a (x);", "0002_b.sql": "CREATE TABLE b (x);"})
	entries, err := ComputeSum(files)
	if err != nil {
		t.Fatal(err)
	}
	files[engine.SumFile] = &fstest.MapFile{Data: FormatSum(entries)}
	if rep := check(t, CheckOptions{Options: engine.Options{Dir: files}}); !rep.OK {
		t.Fatalf("%+v", rep)
	}
	files["0002_b.sql"] = &fstest.MapFile{Data: []byte("CREATE TABLE b (x, y);")}
	rep := check(t, CheckOptions{Options: engine.Options{Dir: files}})
	if rep.OK || rep.Problems[0].Kind != ProblemSum || !strings.Contains(rep.Problems[0].Message, "0002_b.sql changed") {
		t.Fatalf("%+v", rep)
	}
}

func TestDrift(t *testing.T) {
	files := map[string]string{
		"0001_a.sql": "CREATE TABLE a (x INTEGER);",
		"0002_b.sql": "CREATE INDEX ax ON a(x);",
		"0003_c.sql": "CREATE TABLE c (y);",
	}
	e := newEngine(t, files)
	db := tempDB(t)
	if _, err := e.Migrate(ctx(t), db, engine.MigrateOptions{To: 2}); err != nil {
		t.Fatal(err)
	}
	d, err := Drift(ctx(t), e, db)
	if err != nil || d == nil || len(d) != 0 {
		t.Fatalf("a DB at version 2 has the schema of version 2: %v %v", d, err)
	}
	// Another tool's history table, left behind when shoal took over, and
	// an index on it: not drift.
	execAll(t, db, "CREATE TABLE goose_db_version (id INTEGER PRIMARY KEY, version_id INTEGER)",
		"CREATE INDEX goose_v ON goose_db_version(version_id)")
	if d, err := Drift(ctx(t), e, db); err != nil || len(d) != 0 {
		t.Fatalf("another tool's history table counted as drift: %v %v", d, err)
	}
	execAll(t, db, "DROP TABLE goose_db_version")
	execAll(t, db, "DROP INDEX ax", "CREATE INDEX ax ON a(x DESC)", "CREATE TABLE hotfix (z)", "ALTER TABLE a ADD COLUMN w")
	d, err = Drift(ctx(t), e, db)
	if err != nil {
		t.Fatal(err)
	}
	got := []string{}
	for _, x := range d {
		got = append(got, x.Change+" "+x.Type+" "+x.Name)
	}
	if strings.Join(got, ", ") != "different table a, extra table hotfix, different index ax" {
		t.Fatalf("%v", got)
	}
	if _, err := Drift(ctx(t), e, tempDB(t)); !errors.Is(err, engine.ErrNotFound) {
		t.Fatalf("missing file: %v", err)
	}
	unmanaged := tempDB(t)
	execAll(t, unmanaged, "CREATE TABLE a (x)")
	if _, err := Drift(ctx(t), e, unmanaged); !errors.Is(err, engine.ErrUnmanaged) {
		t.Fatalf("unmanaged: %v", err)
	}
}

// Workers call Drift for many tenants at once through one Engine: each
// gets the schema of its own version (the per-version cache is shared).
func TestDriftConcurrent(t *testing.T) {
	e := newEngine(t, map[string]string{
		"0001_a.sql": "CREATE TABLE a (x INTEGER);",
		"0002_b.sql": "CREATE INDEX ax ON a(x);",
		"0003_c.sql": "CREATE TABLE c (y);",
	})
	var dbs []string
	for i := range 12 {
		db := tempDB(t)
		if _, err := e.Migrate(ctx(t), db, engine.MigrateOptions{To: int64(1 + i%3)}); err != nil {
			t.Fatal(err)
		}
		if i%4 == 0 {
			execAll(t, db, "CREATE TABLE hand (z)")
		}
		dbs = append(dbs, db)
	}
	errs := make(chan error, len(dbs))
	for i, db := range dbs {
		go func() {
			d, err := Drift(context.Background(), e, db)
			switch {
			case err != nil:
				errs <- err
			case i%4 == 0 && (len(d) != 1 || d[0].Name != "hand"):
				errs <- fmt.Errorf("db %d: %+v", i, d)
			case i%4 != 0 && len(d) != 0:
				errs <- fmt.Errorf("db %d: %+v", i, d)
			default:
				errs <- nil
			}
		}()
	}
	for range dbs {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

// shoal check reports it, naming file and line.
func TestCheckReportsTxControl(t *testing.T) {
	rep, err := Check(ctx(t), CheckOptions{Options: engine.Options{Dir: dir(map[string]string{"0001_a.sql": "CREATE TABLE a (x);\nCOMMIT;"}), DirName: "migs"}, NoRoundTrip: true})
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK || len(rep.Problems) != 1 || rep.Problems[0].File != "0001_a.sql" || rep.Problems[0].Line != 2 || !strings.Contains(rep.Problems[0].Message, "COMMIT") {
		t.Fatalf("%+v", rep)
	}
}

// shoal check fails on a file without a version, naming it (the loader's
// refusal is engine.TestUnversionedFileRefused).
func TestCheckNamesUnversionedFile(t *testing.T) {
	files := map[string]string{"0001_a.sql": "CREATE TABLE a (x);", "0002_b.sql": "CREATE TABLE b (x);", "add_notes.sql": "CREATE TABLE notes (x);"}
	rep, err := Check(ctx(t), CheckOptions{Options: engine.Options{Dir: dir(files), DirName: "migs"}, NoRoundTrip: true})
	if err != nil || rep.OK || len(rep.Problems) == 0 || !strings.Contains(rep.Problems[0].File, "add_notes.sql") {
		t.Fatalf("check: %+v %v", rep, err)
	}
}
