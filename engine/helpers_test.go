package engine

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"testing/fstest"
	"time"
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
func newEngine(t testing.TB, files map[string]string) *Engine {
	t.Helper()
	e, err := New(Options{Dir: dir(files), DirName: "test", BusyTimeout: 30 * time.Second})
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
	db, err := sql.Open("sqlite", dsn(path, 30*time.Second, false))
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

// dump renders a DB's whole schema and content deterministically, shoal's
// history included.
func dump(t testing.TB, path string) string {
	t.Helper()
	db := sqlOpen(t, path)
	defer db.Close()
	var b strings.Builder
	rows, err := db.Query(`SELECT type, name, coalesce(sql, '') FROM sqlite_schema ORDER BY type, name`)
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var typ, name, s string
		if err := rows.Scan(&typ, &name, &s); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%s %s: %s\n", typ, name, s)
		if typ == "table" && !strings.HasPrefix(name, "sqlite_") {
			tables = append(tables, name)
		}
	}
	rows.Close()
	sort.Strings(tables)
	for _, tb := range tables {
		r, err := db.Query(fmt.Sprintf(`SELECT * FROM %q`, tb))
		if err != nil {
			t.Fatal(err)
		}
		cols, _ := r.Columns()
		var lines []string
		for r.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := r.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			if tb == historyTable {
				vals[3], vals[4] = nil, nil // applied_at, duration_ms vary
			}
			lines = append(lines, fmt.Sprint(vals...))
		}
		r.Close()
		sort.Strings(lines)
		fmt.Fprintf(&b, "-- %s\n%s\n", tb, strings.Join(lines, "\n"))
	}
	var uv, app int64
	db.QueryRow("PRAGMA user_version").Scan(&uv)
	db.QueryRow("PRAGMA application_id").Scan(&app)
	fmt.Fprintf(&b, "user_version=%d application_id=%d\n", uv, app)
	return b.String()
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
	rows, err := db.Query(`SELECT version FROM ` + historyTable + ` ORDER BY version`)
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
