package engine

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
)

var enrollFiles = map[string]string{
	"0001_users.sql": "CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT NOT NULL);",
	"0002_notes.sql": "CREATE TABLE notes (id INTEGER PRIMARY KEY, user_id INTEGER REFERENCES users(id), body TEXT);\nCREATE INDEX notes_user ON notes(user_id);",
	"0003_tags.sql":  "CREATE TABLE tags (id INTEGER PRIMARY KEY, name TEXT);",
}

// A DB built by hand (other whitespace, other order) is adopted at the
// version whose schema it has, found without being told; the next run
// applies only what follows.
func TestEnrollFindsMatchingVersion(t *testing.T) {
	p := tempDB(t)
	execAll(t, p,
		"CREATE TABLE users(id INTEGER PRIMARY KEY,   email TEXT NOT NULL)",
		"CREATE TABLE notes (id INTEGER PRIMARY KEY, user_id INTEGER REFERENCES users(id), body TEXT)",
		"CREATE INDEX notes_user ON notes(user_id)",
		"INSERT INTO users VALUES (1, 'a@example.com')")
	e := newEngine(t, enrollFiles)
	if _, err := e.Migrate(ctx(t), p, MigrateOptions{}); !errors.Is(err, ErrUnmanaged) {
		t.Fatalf("before enroll: %v", err)
	}
	en, err := e.Enroll(ctx(t), p, 0)
	if err != nil || en.Version != 2 || en.Source != "schema match" {
		t.Fatalf("%+v %v", en, err)
	}
	res, err := e.Migrate(ctx(t), p, MigrateOptions{})
	if err != nil || len(res.Applied) != 1 || res.Applied[0].Version != 3 {
		t.Fatalf("%+v %v", res, err)
	}
}

// A DB that differs from migrations 1..N is refused with the differences,
// object by object, and left byte-identical.
func TestEnrollRefusesMismatch(t *testing.T) {
	p := tempDB(t)
	execAll(t, p, "CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT)") // NOT NULL missing
	before := fileBytes(t, p)
	_, err := newEngine(t, enrollFiles).Enroll(ctx(t), p, 1)
	var ee *Error
	if !errors.As(err, &ee) || !errors.Is(err, ErrEnroll) || len(ee.Diffs) != 1 || ee.Diffs[0].Change != SchemaDifferent || ee.Diffs[0].Name != "users" {
		t.Fatalf("want one 'different users' diff, got %v", err)
	}
	if !strings.Contains(err.Error(), "email TEXT NOT NULL") {
		t.Fatalf("the message does not show the wanted definition: %v", err)
	}
	if !bytes.Equal(before, fileBytes(t, p)) {
		t.Fatal("refused enroll changed the DB")
	}
}

// Other tools' records give the version; golang-migrate's dirty flag refuses.
func TestEnrollImportsOtherTools(t *testing.T) {
	schema2 := []string{
		"CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT NOT NULL)",
		"CREATE TABLE notes (id INTEGER PRIMARY KEY, user_id INTEGER REFERENCES users(id), body TEXT)",
		"CREATE INDEX notes_user ON notes(user_id)",
	}
	cases := []struct {
		name    string
		records []string
		want    int64
		dirty   bool
	}{
		{"fastmigrate", []string{"CREATE TABLE _meta (id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL)", "INSERT INTO _meta VALUES (1, 2)"}, 2, false},
		{"rails", []string{"CREATE TABLE schema_migrations (version TEXT PRIMARY KEY)", "INSERT INTO schema_migrations VALUES ('1'), ('2')"}, 2, false},
		{"golang-migrate", []string{"CREATE TABLE schema_migrations (version uint64, dirty bool)", "INSERT INTO schema_migrations VALUES (2, 0)"}, 2, false},
		{"golang-migrate dirty", []string{"CREATE TABLE schema_migrations (version uint64, dirty bool)", "INSERT INTO schema_migrations VALUES (2, 1)"}, 0, true},
		{"goose", []string{"CREATE TABLE goose_db_version (id INTEGER PRIMARY KEY AUTOINCREMENT, version_id INTEGER NOT NULL, is_applied INTEGER NOT NULL, tstamp TIMESTAMP DEFAULT (datetime('now')))",
			"INSERT INTO goose_db_version (version_id, is_applied) VALUES (0, 1), (1, 1), (2, 1)"}, 2, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := tempDB(t)
			execAll(t, p, append(append([]string{}, schema2...), tc.records...)...)
			before := fileBytes(t, p)
			en, err := newEngine(t, enrollFiles).Enroll(ctx(t), p, 0)
			if tc.dirty {
				if !errors.Is(err, ErrEnroll) || !strings.Contains(err.Error(), "dirty") {
					t.Fatalf("want a dirty refusal, got %v", err)
				}
				if !bytes.Equal(before, fileBytes(t, p)) {
					t.Fatal("refused enroll changed the DB")
				}
				return
			}
			if err != nil || en.Version != tc.want || !strings.Contains(en.Source, tc.name[:4]) && tc.name != "rails" {
				t.Fatalf("%+v %v", en, err)
			}
			if h := history(t, p); !reflect.DeepEqual(h, []int64{1, 2}) {
				t.Fatalf("history %v", h)
			}
		})
	}
}

// accept records the new checksum of an edited, applied migration.
func TestAcceptEditedMigration(t *testing.T) {
	p := tempDB(t)
	files := map[string]string{"0001_a.sql": "CREATE TABLE a (x);"}
	newEngine(t, files).Migrate(ctx(t), p, MigrateOptions{})
	files["0001_a.sql"] = "-- a comment added later\nCREATE TABLE a (x);"
	e := newEngine(t, files)
	if _, err := e.Migrate(ctx(t), p, MigrateOptions{}); !errors.Is(err, ErrChanged) {
		t.Fatalf("want changed, got %v", err)
	}
	acc, err := e.Accept(ctx(t), p, []int64{1})
	if err != nil || len(acc) != 1 || acc[0].File != "0001_a.sql" {
		t.Fatalf("%+v %v", acc, err)
	}
	if _, err := e.Migrate(ctx(t), p, MigrateOptions{}); err != nil {
		t.Fatalf("after accept: %v", err)
	}
	if _, err := e.Accept(ctx(t), p, []int64{9}); err == nil {
		t.Fatal("accepting an unapplied version must fail")
	}
}
