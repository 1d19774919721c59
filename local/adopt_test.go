package local

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pressly/goose/v3"
	"github.com/shoal-dev/shoal/engine"
)

// gooseDir is the goose fixture of the engine's tests: four migrations in
// goose's own layout.
var gooseDir = filepath.Join("..", "engine", "testdata", "layouts", "goose")

func gooseEngine(tb testing.TB) *engine.Engine {
	tb.Helper()
	e, err := engine.New(engine.Options{Dir: os.DirFS(gooseDir), DirName: "goose"})
	if err != nil {
		tb.Fatal(err)
	}
	return e
}

// gooseDB writes a DB at version 2 with goose itself.
func gooseDB(tb testing.TB, path string) {
	tb.Helper()
	os.MkdirAll(filepath.Dir(path), 0o755)
	db, err := sql.Open("sqlite", path)
	if err != nil {
		tb.Fatal(err)
	}
	defer db.Close()
	p, err := goose.NewProvider(goose.DialectSQLite3, db, os.DirFS(gooseDir))
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := p.UpTo(context.Background(), 2); err != nil {
		tb.Fatal(err)
	}
}

func copyFile(tb testing.TB, from, to string) {
	tb.Helper()
	os.MkdirAll(filepath.Dir(to), 0o755)
	in, err := os.Open(from)
	if err != nil {
		tb.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(to)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		tb.Fatal(err)
	}
	if err := out.Close(); err != nil {
		tb.Fatal(err)
	}
}

// run --adopt: tenants whose history goose wrote are taken over and
// migrated on first contact (outcome adopted, adopted_from naming goose's
// table); a tenant shoal manages is migrated as usual; a tenant with
// tables and no tool's history stays unmanaged. Without --adopt the goose
// tenants are unmanaged and untouched.
func TestRunAdopt(t *testing.T) {
	t.Parallel()
	e := gooseEngine(t)
	root := t.TempDir()
	gooseDB(t, filepath.Join(root, "g0", "app.db"))
	for i := 1; i < 4; i++ {
		copyFile(t, filepath.Join(root, "g0", "app.db"), filepath.Join(root, fmt.Sprintf("g%d", i), "app.db"))
	}
	os.MkdirAll(filepath.Join(root, "s0"), 0o755)
	if _, err := e.Migrate(context.Background(), filepath.Join(root, "s0", "app.db"), engine.MigrateOptions{To: 2}); err != nil {
		t.Fatal(err)
	}
	plain := filepath.Join(root, "p0", "app.db")
	os.MkdirAll(filepath.Dir(plain), 0o755)
	db, _ := sql.Open("sqlite", plain)
	db.Exec("CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT NOT NULL)")
	db.Close()
	before, _ := os.ReadFile(filepath.Join(root, "g1", "app.db"))

	rep, err := Run(context.Background(), Options{Engine: e, Root: root, Pattern: "*/app.db", Workers: 2, NoBackup: true})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Summary.Counts["unmanaged"] != 5 || rep.Summary.Counts["migrated"] != 1 {
		t.Fatalf("without --adopt: %+v", rep.Summary)
	}
	if after, _ := os.ReadFile(filepath.Join(root, "g1", "app.db")); string(after) != string(before) {
		t.Fatal("a run without --adopt changed a goose DB")
	}

	rep, err = Run(context.Background(), Options{Engine: e, Root: root, Pattern: "*/app.db", Workers: 2, NoBackup: true, Adopt: true})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Summary.Counts[engine.OutcomeAdopted] != 4 || rep.Summary.Counts["current"] != 1 || rep.Summary.Counts["unmanaged"] != 1 {
		t.Fatalf("with --adopt: %+v", rep.Summary)
	}
	for _, r := range rep.Databases {
		switch {
		case r.Tenant[0] == 'g':
			if r.Outcome != engine.OutcomeAdopted || r.AdoptedFrom == nil || *r.AdoptedFrom != "goose (goose_db_version)" ||
				*r.From != 2 || *r.To != 4 || len(r.Applied) != 2 {
				t.Fatalf("%s: %+v", r.Tenant, r)
			}
		case r.Tenant[0] == 'p':
			if r.Outcome != "unmanaged" || r.Error == nil {
				t.Fatalf("%s: %+v", r.Tenant, r)
			}
		}
		if r.Tenant[0] != 'g' && r.AdoptedFrom != nil {
			t.Fatalf("%s: adopted_from %v", r.Tenant, *r.AdoptedFrom)
		}
	}
	if rep.OK() || len(rep.Failed()) != 1 {
		t.Fatalf("only the plain DB is not at head: %+v", rep.Failed())
	}
	// A second run finds everything shoal's: current, nothing adopted.
	rep, err = Run(context.Background(), Options{Engine: e, Root: root, Pattern: "*/app.db", Workers: 2, NoBackup: true, Adopt: true})
	if err != nil || rep.Summary.Counts["current"] != 5 || rep.Summary.Counts[engine.OutcomeAdopted] != 0 {
		t.Fatalf("second run: %+v %v", rep.Summary, err)
	}
}

// BenchmarkRunAdopt measures one `run --adopt` over n tenants whose history
// goose wrote (version 2 of 4: take over, check the schema, record, migrate
// 3 and 4) against a plain `run` over the same tenants already managed by
// shoal at version 2 (migrate 3 and 4), built fresh in the same iteration.
// Reported: both times and their ratio (adopt / plain).
//
//	go test -run '^$' -bench BenchmarkRunAdopt -benchtime 3x ./local/
func BenchmarkRunAdopt(b *testing.B) {
	n := 1000
	if testing.Short() {
		n = 100
	}
	e := gooseEngine(b)
	seed := b.TempDir()
	gooseSeed := filepath.Join(seed, "goose.db")
	gooseDB(b, gooseSeed)
	shoalSeed := filepath.Join(seed, "shoal.db")
	if _, err := e.Migrate(context.Background(), shoalSeed, engine.MigrateOptions{To: 2}); err != nil {
		b.Fatal(err)
	}
	var adoptTime, plainTime time.Duration
	for b.Loop() {
		b.StopTimer()
		gRoot, sRoot := b.TempDir(), b.TempDir()
		for i := range n {
			copyFile(b, gooseSeed, filepath.Join(gRoot, fmt.Sprintf("t-%05d", i), "app.db"))
			copyFile(b, shoalSeed, filepath.Join(sRoot, fmt.Sprintf("t-%05d", i), "app.db"))
		}
		b.StartTimer()
		t0 := time.Now()
		rep, err := Run(context.Background(), Options{Engine: gooseEngine(b), Root: gRoot, Pattern: "*/app.db", Workers: 4, NoBackup: true, Adopt: true})
		adoptTime += time.Since(t0)
		if err != nil || rep.Summary.Counts[engine.OutcomeAdopted] != n {
			b.Fatalf("adopt: %+v %v", rep.Summary, err)
		}
		t0 = time.Now()
		rep, err = Run(context.Background(), Options{Engine: gooseEngine(b), Root: sRoot, Pattern: "*/app.db", Workers: 4, NoBackup: true})
		plainTime += time.Since(t0)
		if err != nil || rep.Summary.Counts["migrated"] != n {
			b.Fatalf("plain: %+v %v", rep.Summary, err)
		}
	}
	b.ReportMetric(adoptTime.Seconds()/float64(b.N), "adopt_s/op")
	b.ReportMetric(plainTime.Seconds()/float64(b.N), "plain_s/op")
	b.ReportMetric(adoptTime.Seconds()/plainTime.Seconds(), "adopt/plain")
}
