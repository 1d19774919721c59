package schema

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shoal-dev/shoal/engine"
)

// Old migrations that break lint rules (as real sets do: IF NOT EXISTS,
// PRAGMA foreign_keys in a transaction, Prisma-style) fail `check` without
// a baseline; at or before the baseline their findings are history and the
// check passes; a later migration is held to every rule, and
// `-- shoal:allow` still works for it.
func TestCheckSinceBaseline(t *testing.T) {
	files := map[string]string{
		"0001_a.sql": "CREATE TABLE IF NOT EXISTS a (x);\n",
		"0002_b.sql": "PRAGMA foreign_keys=OFF;\nCREATE TABLE b (x);\nPRAGMA foreign_keys=ON;\n",
	}
	check := func(files map[string]string, since int64) *CheckReport {
		t.Helper()
		rep, err := Check(ctx(t), CheckOptions{Options: engine.Options{Dir: dir(files), DirName: "m"}, Since: since, NoRoundTrip: true})
		if err != nil {
			t.Fatal(err)
		}
		return rep
	}
	rep := check(files, 0)
	if rep.OK || len(rep.Lint) < 2 {
		t.Fatalf("without a baseline the old findings fail the check: %+v", rep)
	}
	rep = check(files, 2)
	if !rep.OK || rep.Baseline != 2 || len(rep.Lint) < 2 {
		t.Fatalf("with --since 2: %+v", rep)
	}
	for _, f := range rep.Lint {
		if !f.History {
			t.Fatalf("finding not marked history: %+v", f)
		}
	}
	files["0003_c.sql"] = "CREATE TABLE IF NOT EXISTS c (x);\n"
	rep = check(files, 2)
	if rep.OK {
		t.Fatalf("a new migration after the baseline must follow the rules: %+v", rep)
	}
	n := 0
	for _, f := range rep.Lint {
		if f.File == "0003_c.sql" {
			n++
			if f.History {
				t.Fatal("a finding after the baseline marked history")
			}
		}
	}
	if n == 0 {
		t.Fatal("no finding for 0003_c.sql")
	}
	files["0003_c.sql"] = "-- shoal:allow SH006\nCREATE TABLE IF NOT EXISTS c (x);\n"
	if rep = check(files, 2); !rep.OK {
		t.Fatalf("shoal:allow after the baseline: %+v", rep)
	}
}

// `shoal hash --baseline` records the baseline in the sum file; check reads
// it; the sum file still verifies; a later `shoal hash` keeps it.
func TestSumFileBaseline(t *testing.T) {
	d := t.TempDir()
	os.WriteFile(filepath.Join(d, "0001_a.sql"), []byte("CREATE TABLE IF NOT EXISTS a (x);\n"), 0o644)
	os.WriteFile(filepath.Join(d, "0002_b.sql"), []byte("CREATE TABLE b (x);\n"), 0o644)
	if _, err := WriteSumBaseline(d, 1); err != nil {
		t.Fatal(err)
	}
	data := fileBytes(t, filepath.Join(d, engine.SumFile))
	if v, ok, err := SumBaseline(data); err != nil || !ok || v != 1 {
		t.Fatalf("%d %v %v\n%s", v, ok, err, data)
	}
	rep, err := Check(ctx(t), CheckOptions{Options: engine.Options{Dir: os.DirFS(d), DirName: d}, NoRoundTrip: true})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK || rep.Baseline != 1 || len(rep.Problems) != 0 {
		t.Fatalf("%+v", rep)
	}
	os.WriteFile(filepath.Join(d, "0003_c.sql"), []byte("CREATE TABLE c (x);\n"), 0o644)
	if _, err := WriteSum(d); err != nil {
		t.Fatal(err)
	}
	data = fileBytes(t, filepath.Join(d, engine.SumFile))
	if v, ok, _ := SumBaseline(data); !ok || v != 1 || !strings.Contains(string(data), "0003_c.sql") {
		t.Fatalf("hash lost the baseline:\n%s", data)
	}
	if p, err := VerifySum(os.DirFS(d)); err != nil || len(p) != 0 {
		t.Fatal(p, err)
	}
}
