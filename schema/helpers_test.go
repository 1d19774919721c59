package schema

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"testing"
	"testing/fstest"
	"time"

	"github.com/shoal-dev/shoal/engine"
)

// dir builds an in-memory migrations directory.
func dir(files map[string]string) fstest.MapFS {
	m := fstest.MapFS{}
	for name, body := range files {
		m[name] = &fstest.MapFile{Data: []byte(body), Mode: 0o644}
	}
	return m
}

// newEngine parses files or fails the test.
func newEngine(t testing.TB, files map[string]string) *engine.Engine {
	t.Helper()
	e, err := engine.New(engine.Options{Dir: dir(files), DirName: "test", BusyTimeout: 30 * time.Second})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return e
}

// tempDB is a path for a new DB in a fresh directory.
func tempDB(t testing.TB) string {
	t.Helper()
	return filepath.Join(t.TempDir(), "tenant.db")
}

// sqlOpen opens path for a test's own queries.
func sqlOpen(t testing.TB, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+escapeURIPath(path)+"?_pragma=busy_timeout(30000)&_txlock=immediate")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// execAll runs statements on path.
func execAll(t testing.TB, path string, stmts ...string) {
	t.Helper()
	db := sqlOpen(t, path)
	for _, s := range stmts {
		if _, err := db.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	db.Close()
}

// fileBytes reads a file or fails.
func fileBytes(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// history returns the applied versions.
func history(t testing.TB, path string) []int64 {
	t.Helper()
	db := sqlOpen(t, path)
	defer db.Close()
	rows, err := db.Query(`SELECT version FROM shoal_migrations ORDER BY version`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []int64
	for rows.Next() {
		var v int64
		rows.Scan(&v)
		out = append(out, v)
	}
	return out
}

func ctx(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return c
}
