package engine

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func sfSchemaDB(t *testing.T, stmts ...string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "s.db")
	db := sfOpen(t, p)
	for _, s := range stmts {
		sfExec(t, db, s)
	}
	db.Close()
	return p
}

// The same schema written with different whitespace, comments and creation
// order has the same canonical form; shoal_ tables (and their indexes),
// sqlite_ internals and auto-indexes are excluded.
func TestCanonicalSchemaIgnoresFormattingAndOrder(t *testing.T) {
	a := sfSchemaDB(t,
		"CREATE TABLE users (\n  id INTEGER PRIMARY KEY,   -- the id\n  email TEXT UNIQUE, /* c */ name TEXT DEFAULT 'a  b'\n)",
		"CREATE INDEX users_name ON users ( name )",
		"CREATE VIEW v AS SELECT id ,  email FROM users",
		"CREATE TABLE posts(id INTEGER PRIMARY KEY AUTOINCREMENT, user_id INT REFERENCES users(id))",
		"CREATE TRIGGER tr AFTER INSERT ON posts BEGIN\n  UPDATE users SET name = name WHERE id = NEW.user_id;\nEND",
		"CREATE TABLE shoal_migrations(version INTEGER PRIMARY KEY)",
		"CREATE INDEX shoal_idx ON shoal_migrations(version)",
		"CREATE INDEX by_version ON shoal_migrations(version)",
	)
	b := sfSchemaDB(t,
		"CREATE TABLE posts (id INTEGER PRIMARY KEY AUTOINCREMENT,user_id INT REFERENCES users (id))",
		"CREATE TRIGGER tr AFTER INSERT ON posts BEGIN UPDATE users SET name = name WHERE id = NEW.user_id; END",
		"CREATE TABLE users(id INTEGER PRIMARY KEY, email TEXT UNIQUE, name TEXT DEFAULT 'a  b')",
		"CREATE VIEW v AS SELECT id, email FROM users",
		"CREATE INDEX users_name ON users(name)",
	)
	sa, err := DBSchema(context.Background(), a)
	if err != nil {
		t.Fatal(err)
	}
	sb, err := DBSchema(context.Background(), b)
	if err != nil {
		t.Fatal(err)
	}
	ra, rb := SchemaSQL(sa), SchemaSQL(sb)
	if ra != rb {
		t.Fatalf("canonical forms differ:\n%s\n---\n%s", ra, rb)
	}
	if d := DiffSchemas(sa, sb); len(d) != 0 {
		t.Fatalf("diffs: %+v", d)
	}
	want := "CREATE TABLE posts(id INTEGER PRIMARY KEY AUTOINCREMENT,user_id INT REFERENCES users(id));\n\n" +
		"CREATE TABLE users(id INTEGER PRIMARY KEY,email TEXT UNIQUE,name TEXT DEFAULT 'a  b');\n\n" +
		"CREATE INDEX users_name ON users(name);\n\n" +
		"CREATE VIEW v AS SELECT id,email FROM users;\n\n" +
		"CREATE TRIGGER tr AFTER INSERT ON posts BEGIN UPDATE users SET name = name WHERE id = NEW.user_id; END;\n"
	if ra != want {
		t.Fatalf("got:\n%s\nwant:\n%s", ra, want)
	}
	for _, o := range sa {
		if strings.HasPrefix(o.Name, "shoal_") || strings.HasPrefix(o.Name, "sqlite_") || o.Name == "by_version" {
			t.Fatalf("internal object listed: %+v", o)
		}
	}
	// The rendering is runnable and reproduces itself.
	c := sfSchemaDB(t, ra)
	sc, err := DBSchema(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	if SchemaSQL(sc) != ra {
		t.Fatalf("re-run rendering differs:\n%s", SchemaSQL(sc))
	}
}

func TestNormalizeSQL(t *testing.T) {
	cases := map[string]string{
		"CREATE  TABLE\n\t\"my  t\" ( a  TEXT )":     `CREATE TABLE "my  t"(a TEXT)`,
		"CREATE TABLE t(a TEXT DEFAULT 'x -- y' ) ;": "CREATE TABLE t(a TEXT DEFAULT 'x -- y')",
		"CREATE TABLE [a b] (`c  d` INT/*x*/, e)":    "CREATE TABLE [a b](`c  d` INT,e)",
		"CREATE TABLE t(a TEXT DEFAULT 'it''s  ok')": "CREATE TABLE t(a TEXT DEFAULT 'it''s  ok')",
		"SELECT x - -1":   "SELECT x - -1",
		"":                "",
		"'unterminated  ": "'unterminated  ",
	}
	for in, want := range cases {
		if got := NormalizeSQL(in); got != want {
			t.Errorf("NormalizeSQL(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestDiffSchemasReportsEachKind(t *testing.T) {
	want := []SchemaObject{
		{Type: "table", Name: "a", Table: "a", SQL: "CREATE TABLE a(x)"},
		{Type: "table", Name: "b", Table: "b", SQL: "CREATE TABLE b(x)"},
		{Type: "index", Name: "i", Table: "a", SQL: "CREATE INDEX i ON a(x)"},
	}
	got := []SchemaObject{
		{Type: "table", Name: "A", Table: "a", SQL: "CREATE  TABLE a( x )"}, // same, other spelling
		{Type: "index", Name: "i", Table: "a", SQL: "CREATE UNIQUE INDEX i ON a(x)"},
		{Type: "view", Name: "v", Table: "v", SQL: "CREATE VIEW v AS SELECT 1"},
	}
	d := DiffSchemas(want, got)
	if len(d) != 3 {
		t.Fatalf("got %d diffs: %+v", len(d), d)
	}
	exp := []SchemaDiff{
		{Type: "table", Name: "b", Change: SchemaMissing, Want: "CREATE TABLE b(x)"},
		{Type: "index", Name: "i", Change: SchemaDifferent, Want: "CREATE INDEX i ON a(x)", Got: "CREATE UNIQUE INDEX i ON a(x)"},
		{Type: "view", Name: "v", Change: SchemaExtra, Got: "CREATE VIEW v AS SELECT 1"},
	}
	for i := range exp {
		if d[i] != exp[i] {
			t.Fatalf("diff %d = %+v, want %+v", i, d[i], exp[i])
		}
	}
	if d := DiffSchemas(nil, nil); d == nil || len(d) != 0 {
		t.Fatalf("empty diff must be an empty slice, got %#v", d)
	}
}

// DBSchema never creates a missing file; a non-database is ErrCorrupt.
func TestDBSchemaMissingAndCorrupt(t *testing.T) {
	p := filepath.Join(t.TempDir(), "none.db")
	if _, err := DBSchema(context.Background(), p); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing: %v", err)
	}
	if _, err := os.Stat(p); err == nil {
		t.Fatal("DBSchema created the file")
	}
	junk := filepath.Join(t.TempDir(), "junk.db")
	os.WriteFile(junk, []byte(strings.Repeat("not sqlite ", 500)), 0o644)
	if _, err := DBSchema(context.Background(), junk); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("junk: %v", err)
	}
	empty := filepath.Join(t.TempDir(), "empty.db")
	os.WriteFile(empty, nil, 0o644)
	objs, err := DBSchema(context.Background(), empty)
	if err != nil || objs == nil || len(objs) != 0 || SchemaSQL(objs) != "" {
		t.Fatalf("empty: %#v %v", objs, err)
	}
}
