package engine

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"testing/fstest"
	"time"
)

// layoutCase describes one fixture directory in a tool's own layout
// (testdata/layouts/<tool>): four migrations (users; audit with a trigger
// whose body holds ';'; an index, outside a transaction where the tool has
// that; a column), with down parts where the tool has them.
type layoutCase struct {
	dir      string
	layout   string
	versions []int64
	noTx     int64 // the version that runs outside a transaction, 0: none
	down     bool  // every migration has a down part
	upFiles  []string
}

var layoutCases = []layoutCase{
	{"goose", LayoutGoose, []int64{1, 2, 3, 4}, 3, true, nil},
	{"golang-migrate", LayoutGolangMigrate, []int64{1, 2, 3, 4}, 0, true,
		[]string{"1_create_users.up.sql", "2_create_audit.up.sql", "3_users_email_index.up.sql", "4_add_name.up.sql"}},
	{"sqlx", LayoutSqlx, []int64{20240115100000, 20240116110000, 20240117120000, 20240118130000}, 20240117120000, true,
		[]string{"20240115100000_create_users.up.sql", "20240116110000_create_audit.up.sql", "20240117120000_users_email_index.up.sql", "20240118130000_add_name.up.sql"}},
	{"diesel", LayoutDiesel, []int64{1, 20240115100000, 20240116110000, 20240117120000, 20240118130000}, 20240117120000, true,
		[]string{"00000000000000_diesel_initial_setup/up.sql", "2024-01-15-100000_create_users/up.sql", "2024-01-16-110000_create_audit/up.sql", "2024-01-17-120000_users_email_index/up.sql", "2024-01-18-130000_add_name/up.sql"}},
	{"flyway", LayoutFlyway, []int64{1000, 1001, 2000, 3000}, 2000, true,
		[]string{"V1__create_users.sql", "V1_1__create_audit.sql", "V2__users_email_index.sql", "V3__add_name.sql"}},
	{"refinery", LayoutRefinery, []int64{1, 2, 3, 4}, 0, false,
		[]string{"V1__create_users.sql", "V2__create_audit.sql", "U3__users_email_index.sql", "V4__add_name.sql"}},
	{"prisma", LayoutPrisma, []int64{20240115100000, 20240116110000, 20240117120000, 20240118130000}, 0, false,
		[]string{"20240115100000_create_users/migration.sql", "20240116110000_create_audit/migration.sql", "20240117120000_users_email_index/migration.sql", "20240118130000_add_name/migration.sql"}},
	{"atlas", LayoutAtlas, []int64{20240115100000, 20240116110000, 20240117120000, 20240118130000}, 20240117120000, false,
		[]string{"20240115100000_create_users.sql", "20240116110000_create_audit.sql", "20240117120000_users_email_index.sql", "20240118130000_add_name.sql"}},
	{"dbmate", LayoutShoal, []int64{20240115100000, 20240116110000, 20240117120000, 20240118130000}, 20240117120000, true, nil},
	{"fastmigrate", LayoutShoal, []int64{1, 2, 3, 4}, 0, false,
		[]string{"0001-create_users.sql", "0002-create_audit.sql", "0003-users_email_index.sql", "0004-add_name.sql"}},
}

func layoutDir(name string) string { return filepath.Join("testdata", "layouts", name) }

func layoutEngine(t testing.TB, name, layout string) *Engine {
	t.Helper()
	e, err := New(Options{Dir: os.DirFS(layoutDir(name)), DirName: name, Layout: layout, BusyTimeout: 30 * time.Second})
	if err != nil {
		t.Fatalf("New(%s): %v", name, err)
	}
	return e
}

// userSchema is the canonical schema of a DB without shoal's and other
// tools' bookkeeping tables.
func userSchema(t testing.TB, path string) string {
	t.Helper()
	objs, err := DBSchema(ctx(t), path)
	if err != nil {
		t.Fatal(err)
	}
	objs = withoutTables(objs, foreignTables)
	return SchemaSQL(objs)
}

// applyRaw applies files in order the way the tool would with SQLite
// directly: each file's whole text in one Exec.
func applyRaw(t testing.TB, path string, fsys fs.FS, files []string) {
	t.Helper()
	db := sqlOpen(t, path)
	defer db.Close()
	for _, f := range files {
		b, err := fs.ReadFile(fsys, f)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.Exec(string(b)); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
	}
}

// Every fixture is detected as its tool's layout, read with its versions,
// down parts and non-transactional step; migrating gives the schema that
// applying the files in order with SQLite gives; down goes back to empty.
func TestLayoutsReadAndMigrate(t *testing.T) {
	for _, tc := range layoutCases {
		t.Run(tc.dir, func(t *testing.T) {
			e := layoutEngine(t, tc.dir, "")
			if e.Layout() != tc.layout {
				t.Fatalf("layout %q, want %q", e.Layout(), tc.layout)
			}
			var vs []int64
			for _, m := range e.Migrations() {
				vs = append(vs, m.Version)
				if (m.Version == tc.noTx) != (m.Kind == KindSQLNoTx) {
					t.Errorf("%s: kind %v", m.File, m.Kind)
				}
				if tc.down && !m.HasDown {
					t.Errorf("%s: no down part", m.File)
				}
			}
			if !reflect.DeepEqual(vs, tc.versions) {
				t.Fatalf("versions %v, want %v", vs, tc.versions)
			}
			p := tempDB(t)
			if _, err := e.Migrate(ctx(t), p, MigrateOptions{}); err != nil {
				t.Fatal(err)
			}
			got := userSchema(t, p)
			if !strings.Contains(got, "CREATE TRIGGER") || !strings.Contains(got, "name TEXT") {
				t.Fatalf("schema lacks the trigger or the last column:\n%s", got)
			}
			if tc.upFiles != nil {
				raw := filepath.Join(t.TempDir(), "raw.db")
				applyRaw(t, raw, os.DirFS(layoutDir(tc.dir)), tc.upFiles)
				if want := userSchema(t, raw); got != want {
					t.Fatalf("schema differs from the files applied with SQLite:\n%s\nwant:\n%s", got, want)
				}
			}
			// The trigger body's ';' inside a string survived.
			execAll(t, p, "INSERT INTO users (email, name) VALUES ('a@x', 'a')")
			var note string
			if err := sqlOpen(t, p).QueryRow("SELECT note FROM audit").Scan(&note); err != nil || note != "created; welcome" {
				t.Fatalf("trigger: %q %v", note, err)
			}
			if tc.down {
				if _, err := e.Down(ctx(t), p, 0); err != nil {
					t.Fatal(err)
				}
				if s := userSchema(t, p); s != "" {
					t.Fatalf("after down to 0: %s", s)
				}
			}
		})
	}
}

// Files stay byte-identical: reading and migrating changes no file, and the
// checksum is over the up file's bytes as in shoal's own layout.
func TestLayoutChecksumsOverFileBytes(t *testing.T) {
	e := layoutEngine(t, "golang-migrate", "")
	m := e.Migrations()[0]
	b := fileBytes(t, filepath.Join(layoutDir("golang-migrate"), m.File))
	if m.Checksum != Checksum(b) {
		t.Fatalf("checksum %s, want the up file's %s", m.Checksum, Checksum(b))
	}
	if !reflect.DeepEqual(m.Files, []string{"1_create_users.up.sql", "1_create_users.down.sql"}) {
		t.Fatalf("files %v", m.Files)
	}
}

// --layout forces a layout: sqlx reads golang-migrate's pairs; forcing a
// layout that does not read the files is refused, naming one.
func TestLayoutForced(t *testing.T) {
	e := layoutEngine(t, "golang-migrate", "sqlx")
	if e.Layout() != LayoutSqlx || len(e.Migrations()) != 4 {
		t.Fatalf("%s %d", e.Layout(), len(e.Migrations()))
	}
	e = layoutEngine(t, "fastmigrate", "rails")
	if e.Layout() != LayoutShoal {
		t.Fatal(e.Layout())
	}
	_, err := New(Options{Dir: os.DirFS(layoutDir("goose")), DirName: "goose", Layout: "dbmate"})
	var de *DirError
	if !errors.As(err, &de) || !strings.Contains(de.File, ".sql") || !strings.Contains(err.Error(), "goose") {
		t.Fatalf("forcing dbmate onto goose files: %v", err)
	}
	if _, err := New(Options{Dir: os.DirFS(layoutDir("goose")), Layout: "liquibase"}); !errors.Is(err, ErrInvalidDir) || !strings.Contains(err.Error(), "golang-migrate") {
		t.Fatalf("unknown layout: %v", err)
	}
}

// A directory mixing layouts is refused with one example file of each.
func TestLayoutMixedRefused(t *testing.T) {
	cases := map[string]map[string]string{
		"goose+pair": {
			"00001_a.sql":    "-- +goose Up\nCREATE TABLE a (x);\n",
			"2_b.up.sql":     "CREATE TABLE b (x);\n",
			"2_b.down.sql":   "DROP TABLE b;\n",
			"00003_c.sql":    "-- +goose Up\nCREATE TABLE c (x);\n",
			"README.md":      "ignored",
			"schema.sql":     "ignored",
			".hidden.up.sql": "ignored",
		},
		"plain+pair":    {"1_a.sql": "CREATE TABLE a (x);", "2_b.up.sql": "CREATE TABLE b (x);"},
		"flyway+dbmate": {"V1__a.sql": "CREATE TABLE a (x);", "2_b.sql": "-- migrate:up\nCREATE TABLE b (x);"},
		"diesel+prisma": {"2024-01-01-000000_a/up.sql": "CREATE TABLE a (x);", "20240102000000_b/migration.sql": "CREATE TABLE b (x);"},
	}
	for name, files := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := New(Options{Dir: dir(files), DirName: "m"})
			if !errors.Is(err, ErrInvalidDir) || !strings.Contains(err.Error(), "mixes the layouts") {
				t.Fatalf("want a mixed-layout refusal, got %v", err)
			}
			n := 0
			for f := range files {
				if strings.Contains(err.Error(), f+" (") {
					n++
				}
			}
			if n != 2 {
				t.Fatalf("want one example file of each of 2 layouts: %v", err)
			}
		})
	}
}

// Each layout's own rules: Flyway repeatables and baselines refused, an
// undo without its V refused, dotted versions ordered; goose annotations
// checked; a Prisma directory for another provider refused; atlas.sum
// verified as Atlas does; diesel's version without dashes.
func TestLayoutRules(t *testing.T) {
	refuse := func(t *testing.T, files map[string]string, want string) {
		t.Helper()
		_, err := New(Options{Dir: dir(files), DirName: "m"})
		if !errors.Is(err, ErrInvalidDir) || !strings.Contains(err.Error(), want) {
			t.Fatalf("want a refusal saying %q, got %v", want, err)
		}
	}
	t.Run("flyway repeatable", func(t *testing.T) {
		refuse(t, map[string]string{"V1__a.sql": "CREATE TABLE a (x);", "R__views.sql": "CREATE VIEW v AS SELECT 1;"}, "repeatable")
	})
	t.Run("flyway baseline", func(t *testing.T) {
		refuse(t, map[string]string{"V1__a.sql": "CREATE TABLE a (x);", "B2__base.sql": "CREATE TABLE b (x);"}, "baseline")
	})
	t.Run("flyway undo without V", func(t *testing.T) {
		_, err := New(Options{Dir: dir(map[string]string{"V1__a.sql": "CREATE TABLE a (x);", "U2__b.sql": "DROP TABLE b;"}), Layout: "flyway"})
		if !errors.Is(err, ErrInvalidDir) || !strings.Contains(err.Error(), "no V file") {
			t.Fatal(err)
		}
	})
	t.Run("flyway dotted order and equal versions", func(t *testing.T) {
		e, err := New(Options{Dir: dir(map[string]string{
			"V1__a.sql": "CREATE TABLE a (x);", "V1.2__c.sql": "CREATE TABLE c (x);", "V1_1_5__b.sql": "CREATE TABLE b (x);", "V10__d.sql": "CREATE TABLE d (x);"})})
		if err != nil {
			t.Fatal(err)
		}
		var files []string
		for _, m := range e.Migrations() {
			files = append(files, m.File+"="+m.ToolVersion)
		}
		if want := []string{"V1__a.sql=1", "V1_1_5__b.sql=1.1.5", "V1.2__c.sql=1.2", "V10__d.sql=10"}; !reflect.DeepEqual(files, want) {
			t.Fatalf("%v, want %v", files, want)
		}
		refuse(t, map[string]string{"V1__a.sql": "CREATE TABLE a (x);", "V1.0__b.sql": "CREATE TABLE b (x);"}, "both have version 1")
	})
	t.Run("goose annotations", func(t *testing.T) {
		refuse(t, map[string]string{"1_a.sql": "-- +goose Down\nDROP TABLE a;\n-- +goose Up\nCREATE TABLE a (x);\n"}, "before \"-- +goose Up\"")
		refuse(t, map[string]string{"1_a.sql": "-- +goose Up\n-- +goose StatementBegin\nCREATE TABLE a (x);\n"}, "no StatementEnd")
		refuse(t, map[string]string{"1_a.sql": "CREATE TABLE z (x);\n-- +goose Up\nCREATE TABLE a (x);\n"}, "belongs to no section")
		refuse(t, map[string]string{"1_a.sql": "-- +goose Up\n-- +goose ENVSUB ON\nCREATE TABLE a (x);\n"}, "environment variables")
		refuse(t, map[string]string{"1_a.sql": "-- +goose Up\nCREATE TABLE a (x);\n", "2_b.go": "package m\n"}, "GoMigration")
	})
	t.Run("transaction control", func(t *testing.T) {
		refuse(t, map[string]string{"1_a.sql": "-- +goose Up\nBEGIN;\nCREATE TABLE a (x);\nCOMMIT;\n"}, "-- +goose NO TRANSACTION")
		refuse(t, map[string]string{"1_a.up.sql": "CREATE TABLE a (x);\n", "1_a.down.sql": "BEGIN;\nDROP TABLE a;\nCOMMIT;\n"}, "BEGIN in the down section")
		if _, err := New(Options{Dir: dir(map[string]string{"1_a.sql": "-- +goose NO TRANSACTION\n-- +goose Up\nBEGIN;\nCREATE TABLE a (x);\nCOMMIT;\n"})}); err != nil {
			t.Fatalf("a NO TRANSACTION goose file may hold transaction control: %v", err)
		}
	})
	t.Run("prisma provider", func(t *testing.T) {
		refuse(t, map[string]string{"migration_lock.toml": "provider = \"postgresql\"\n", "20240101000000_a/migration.sql": "CREATE TABLE a (x);"}, "postgresql")
	})
	t.Run("atlas sum", func(t *testing.T) {
		files := map[string]string{}
		entries, _ := os.ReadDir(layoutDir("atlas"))
		for _, en := range entries {
			files[en.Name()] = string(fileBytes(t, filepath.Join(layoutDir("atlas"), en.Name())))
		}
		files["20240116110000_create_audit.sql"] += "\n-- edited\n"
		refuse(t, files, "20240116110000_create_audit.sql (or a file before it) was edited")
		files["20240116110000_create_audit.sql"] = strings.TrimSuffix(files["20240116110000_create_audit.sql"], "\n-- edited\n")
		files["20240119000000_more.sql"] = "CREATE TABLE more (x);\n"
		refuse(t, files, "20240119000000_more.sql was added")
	})
	t.Run("diesel versions", func(t *testing.T) {
		e := layoutEngine(t, "diesel", "")
		var keys []string
		for _, m := range e.Migrations() {
			keys = append(keys, m.ToolVersion)
		}
		sort.Strings(keys)
		if keys[0] != "00000000000000" || keys[1] != "20240115100000" {
			t.Fatal(keys)
		}
	})
	t.Run("golang-migrate down without up", func(t *testing.T) {
		refuse(t, map[string]string{"1_a.up.sql": "CREATE TABLE a (x);", "2_b.down.sql": "DROP TABLE b;"}, "without an up part")
	})
}

// LayoutFiles lists every file of a foreign layout's migrations.
func TestLayoutFiles(t *testing.T) {
	files, layout, err := LayoutFiles(os.DirFS(layoutDir("flyway")), "")
	if err != nil || layout != LayoutFlyway {
		t.Fatal(layout, err)
	}
	if len(files) != 9 {
		t.Fatalf("%d files: %v", len(files), files)
	}
	if _, _, err := LayoutFiles(fstest.MapFS{}, ""); err != nil {
		t.Fatal(err)
	}
}
