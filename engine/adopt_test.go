package engine

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/golang-migrate/migrate/v4"
	_ "github.com/golang-migrate/migrate/v4/database/sqlite" // golang-migrate's pure-Go SQLite driver (modernc)
	_ "github.com/golang-migrate/migrate/v4/source/file"
	"github.com/pressly/goose/v3"
)

// gooseUpTo migrates path to version with goose itself, so that
// goose_db_version is exactly what goose writes.
func gooseUpTo(t testing.TB, path string, fsys fs.FS, version int64) {
	t.Helper()
	db := sqlOpen(t, path)
	defer db.Close()
	p, err := goose.NewProvider(goose.DialectSQLite3, db, fsys)
	if err != nil {
		t.Fatal(err)
	}
	if version == 0 {
		_, err = p.Up(context.Background())
	} else {
		_, err = p.UpTo(context.Background(), version)
	}
	if err != nil {
		t.Fatalf("goose up to %d: %v", version, err)
	}
}

// golangMigrateTo migrates path with golang-migrate itself (its sqlite
// driver, pure Go); version 0 is all the way up.
func golangMigrateTo(t testing.TB, path, dir string, version uint) error {
	t.Helper()
	abs, err := filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}
	m, err := migrate.New("file://"+abs, "sqlite://"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if version == 0 {
		return m.Up()
	}
	return m.Migrate(version)
}

// tableDump renders one table's rows, to show that shoal leaves another
// tool's history table as it was.
func tableDump(t testing.TB, path, table string) string {
	t.Helper()
	db := sqlOpen(t, path)
	defer db.Close()
	rows, err := db.Query(fmt.Sprintf(`SELECT * FROM %q ORDER BY 1`, table))
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var b strings.Builder
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		rows.Scan(ptrs...)
		fmt.Fprintln(&b, vals...)
	}
	return b.String()
}

// takeOver enrolls path from tool, migrates the rest and checks: the
// enrolled version, the other tool's table untouched, the schema equal to
// want's, and down to 0 where the tool has down parts.
func takeOver(t *testing.T, e *Engine, path, tool, table string, at int64, want string, down bool) {
	t.Helper()
	before := tableDump(t, path, table)
	en, err := e.EnrollWith(ctx(t), path, EnrollOptions{From: tool})
	if err != nil {
		t.Fatalf("enroll --from %s: %v", tool, err)
	}
	if en.Version != at || !strings.HasPrefix(en.From, strings.Split(tool, "/")[0]) || !strings.Contains(en.Source, table) {
		t.Fatalf("enrolled %+v, want version %d from %s", en, at, tool)
	}
	res, err := e.Migrate(ctx(t), path, MigrateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.From != at || res.To != e.Head() || len(res.Applied) == 0 {
		t.Fatalf("migrate after takeover: %+v", res)
	}
	if got := userSchema(t, path); got != want {
		t.Fatalf("schema after takeover:\n%s\nwant:\n%s", got, want)
	}
	if after := tableDump(t, path, table); after != before {
		t.Fatalf("%s changed:\n%s\nwas:\n%s", table, after, before)
	}
	if down {
		if _, err := e.Down(ctx(t), path, 0); err != nil {
			t.Fatal(err)
		}
		if s := userSchema(t, path); s != "" {
			t.Fatalf("after down to 0: %s", s)
		}
	}
}

// goose writes the DB at version 2 (its own goose_db_version); shoal takes
// over, migrates 3 (NO TRANSACTION) and 4, and the schema equals what goose
// itself gives applying every file; down works.
func TestAdoptGoose(t *testing.T) {
	fsys := os.DirFS(layoutDir("goose"))
	full := filepath.Join(t.TempDir(), "goose-full.db")
	gooseUpTo(t, full, fsys, 0)
	want := userSchema(t, full)
	p := tempDB(t)
	gooseUpTo(t, p, fsys, 2)
	e := layoutEngine(t, "goose", "")
	takeOver(t, e, p, "goose", "goose_db_version", 2, want, true)

	// Detected without --from, too; and goose's older down rows
	// (is_applied = 0) take a version back.
	p = tempDB(t)
	gooseUpTo(t, p, fsys, 3)
	execAll(t, p, "DROP INDEX users_email", "INSERT INTO goose_db_version (version_id, is_applied) VALUES (3, 0)")
	en, err := e.Enroll(ctx(t), p, 0)
	if err != nil || en.Version != 2 || en.From != "goose" {
		t.Fatalf("%+v %v", en, err)
	}
}

// golang-migrate writes the DB at version 2; shoal takes over and migrates
// the rest; a dirty version (a migration that failed under golang-migrate)
// is refused, naming it, and the DB is left byte-identical.
func TestAdoptGolangMigrate(t *testing.T) {
	dir := layoutDir("golang-migrate")
	full := filepath.Join(t.TempDir(), "gm-full.db")
	if err := golangMigrateTo(t, full, dir, 0); err != nil {
		t.Fatal(err)
	}
	want := userSchema(t, full)
	p := tempDB(t)
	if err := golangMigrateTo(t, p, dir, 2); err != nil {
		t.Fatal(err)
	}
	takeOver(t, layoutEngine(t, "golang-migrate", ""), p, "golang-migrate", "schema_migrations", 2, want, true)

	// Dirty: version 2 fails under golang-migrate.
	bad := t.TempDir()
	for _, f := range []string{"1_create_users.up.sql", "1_create_users.down.sql"} {
		os.WriteFile(filepath.Join(bad, f), fileBytes(t, filepath.Join(dir, f)), 0o644)
	}
	os.WriteFile(filepath.Join(bad, "2_broken.up.sql"), []byte("CREATE TABLE ok (x);\nCREATE TABLE broken (;\n"), 0o644)
	p = tempDB(t)
	if err := golangMigrateTo(t, p, bad, 0); err == nil {
		t.Fatal("golang-migrate applied a broken migration")
	}
	e, err := New(Options{Dir: os.DirFS(bad), DirName: "bad"})
	if err != nil {
		t.Fatal(err)
	}
	before := fileBytes(t, p)
	_, err = e.EnrollWith(ctx(t), p, EnrollOptions{From: "golang-migrate"})
	var ee *Error
	if !errors.As(err, &ee) || !errors.Is(err, ErrEnroll) || !strings.Contains(err.Error(), "dirty") || ee.Version != 2 {
		t.Fatalf("want a dirty refusal naming version 2, got %v", err)
	}
	if !bytes.Equal(before, fileBytes(t, p)) {
		t.Fatal("refused enroll changed the DB")
	}
}

// historyCase is a DB whose history another tool wrote at an older
// version: its own table DDL and rows, after its first migrations applied.
type historyCase struct {
	name, dir, from, table string
	at                     int64
	applied                []string // up files applied before the takeover
	history                func(t *testing.T) []string
	down                   bool
	alembic                map[string]int64
}

func sha384hex(b []byte) string {
	s := sha512.Sum384(b)
	return fmt.Sprintf("X'%x'", s[:])
}

func historyCases() []historyCase {
	read := func(t *testing.T, dir, f string) []byte { return fileBytes(t, filepath.Join(layoutDir(dir), f)) }
	return []historyCase{
		{name: "dbmate", dir: "dbmate", from: "dbmate", table: "schema_migrations", at: 20240116110000, down: true,
			history: func(t *testing.T) []string {
				return []string{`CREATE TABLE IF NOT EXISTS "schema_migrations" (version varchar(128) primary key)`,
					`INSERT INTO schema_migrations (version) VALUES ('20240115100000'), ('20240116110000')`}
			}},
		{name: "rails", dir: "dbmate", from: "rails", table: "schema_migrations", at: 20240116110000, down: true,
			history: func(t *testing.T) []string {
				return []string{`CREATE TABLE "schema_migrations" ("version" varchar NOT NULL PRIMARY KEY)`,
					`CREATE TABLE "ar_internal_metadata" ("key" varchar NOT NULL PRIMARY KEY, "value" varchar, "created_at" datetime(6) NOT NULL, "updated_at" datetime(6) NOT NULL)`,
					`INSERT INTO schema_migrations VALUES ('20240115100000'), ('20240116110000')`}
			}},
		{name: "fastmigrate", dir: "fastmigrate", from: "fastmigrate", table: "_meta", at: 2,
			applied: []string{"0001-create_users.sql", "0002-create_audit.sql"},
			history: func(t *testing.T) []string {
				return []string{`CREATE TABLE _meta (id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL DEFAULT 0)`, `INSERT INTO _meta VALUES (1, 2)`}
			}},
		{name: "alembic", dir: "fastmigrate", from: "alembic", table: "alembic_version", at: 2,
			applied: []string{"0001-create_users.sql", "0002-create_audit.sql"}, alembic: map[string]int64{"1975ea83b712": 1, "ae1027a6acf": 2},
			history: func(t *testing.T) []string {
				return []string{`CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL, CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num))`,
					`INSERT INTO alembic_version VALUES ('ae1027a6acf')`}
			}},
		{name: "diesel", dir: "diesel", from: "diesel", table: "__diesel_schema_migrations", at: 20240116110000, down: true,
			applied: []string{"2024-01-15-100000_create_users/up.sql", "2024-01-16-110000_create_audit/up.sql"},
			history: func(t *testing.T) []string {
				return []string{`CREATE TABLE IF NOT EXISTS __diesel_schema_migrations (version VARCHAR(50) PRIMARY KEY NOT NULL, run_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP)`,
					`INSERT INTO __diesel_schema_migrations (version) VALUES ('00000000000000'), ('20240115100000'), ('20240116110000')`}
			}},
		{name: "sqlx", dir: "sqlx", from: "sqlx", table: "_sqlx_migrations", at: 20240116110000, down: true,
			applied: []string{"20240115100000_create_users.up.sql", "20240116110000_create_audit.up.sql"},
			history: func(t *testing.T) []string {
				return []string{`CREATE TABLE IF NOT EXISTS _sqlx_migrations (version BIGINT PRIMARY KEY, description TEXT NOT NULL, installed_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, success BOOLEAN NOT NULL, checksum BLOB NOT NULL, execution_time BIGINT NOT NULL)`,
					fmt.Sprintf(`INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) VALUES (20240115100000, 'create users', TRUE, %s, 1), (20240116110000, 'create audit', TRUE, %s, 1)`,
						sha384hex(read(t, "sqlx", "20240115100000_create_users.up.sql")), sha384hex(read(t, "sqlx", "20240116110000_create_audit.up.sql")))}
			}},
		{name: "flyway", dir: "flyway", from: "flyway", table: "flyway_schema_history", at: 1001, down: true,
			applied: []string{"V1__create_users.sql", "V1_1__create_audit.sql"},
			history: func(t *testing.T) []string {
				return []string{`CREATE TABLE "flyway_schema_history" ("installed_rank" INT NOT NULL PRIMARY KEY, "version" VARCHAR(50), "description" VARCHAR(200) NOT NULL, "type" VARCHAR(20) NOT NULL, "script" VARCHAR(1000) NOT NULL, "checksum" INT, "installed_by" VARCHAR(100) NOT NULL, "installed_on" TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f','now')), "execution_time" INT NOT NULL, "success" BOOLEAN NOT NULL)`,
					fmt.Sprintf(`INSERT INTO flyway_schema_history (installed_rank, version, description, type, script, checksum, installed_by, execution_time, success) VALUES
						(1, '1', 'create users', 'SQL', 'V1__create_users.sql', %d, 'app', 3, 1),
						(2, '1.1', 'create audit', 'SQL', 'V1_1__create_audit.sql', %d, 'app', 3, 1)`,
						FlywayChecksum(read(t, "flyway", "V1__create_users.sql")), FlywayChecksum(read(t, "flyway", "V1_1__create_audit.sql")))}
			}},
		{name: "prisma", dir: "prisma", from: "prisma", table: "_prisma_migrations", at: 20240116110000,
			applied: []string{"20240115100000_create_users/migration.sql", "20240116110000_create_audit/migration.sql"},
			history: func(t *testing.T) []string {
				sum := func(f string) string { return fmt.Sprintf("%x", sha256sum(read(t, "prisma", f))) }
				return []string{`CREATE TABLE "_prisma_migrations" ("id" TEXT PRIMARY KEY NOT NULL, "checksum" TEXT NOT NULL, "finished_at" DATETIME, "migration_name" TEXT NOT NULL, "logs" TEXT, "rolled_back_at" DATETIME, "started_at" DATETIME NOT NULL DEFAULT current_timestamp, "applied_steps_count" INTEGER UNSIGNED NOT NULL DEFAULT 0)`,
					fmt.Sprintf(`INSERT INTO _prisma_migrations (id, checksum, finished_at, migration_name, started_at, applied_steps_count) VALUES
						('a1', '%s', 1705312800000, '20240115100000_create_users', 1705312800000, 1),
						('a2', 'bad', NULL, '20240116110000_create_audit', 1705312801000, 0),
						('a3', '%s', 1705312802000, '20240116110000_create_audit', 1705312802000, 1)`,
						sum("20240115100000_create_users/migration.sql"), sum("20240116110000_create_audit/migration.sql")),
					`UPDATE _prisma_migrations SET rolled_back_at = 1705312801500 WHERE id = 'a2'`}
			}},
	}
}

// rawAt builds a DB the way the tool left it: its first migrations applied
// with SQLite, then its history table.
func (hc historyCase) rawAt(t *testing.T, e *Engine) string {
	t.Helper()
	p := tempDB(t)
	if hc.applied != nil {
		applyRaw(t, p, os.DirFS(layoutDir(hc.dir)), hc.applied)
	} else {
		// Native files with down sections: apply their up parts.
		if _, err := e.Migrate(ctx(t), p, MigrateOptions{To: hc.at}); err != nil {
			t.Fatal(err)
		}
		execAll(t, p, "DROP TABLE "+historyTable, "DROP TABLE "+metaTable, "PRAGMA application_id = 0", "PRAGMA user_version = 0")
		e.forget(p)
	}
	execAll(t, p, hc.history(t)...)
	return p
}

// Every tool's history table, written as that tool writes it at an older
// version, is taken over: the same position recorded, the rest migrated,
// the schema equal to applying every file with SQLite, the tool's table
// untouched, down working where the tool has down parts.
func TestAdoptHistories(t *testing.T) {
	for _, hc := range historyCases() {
		t.Run(hc.name, func(t *testing.T) {
			e := layoutEngine(t, hc.dir, "")
			full := filepath.Join(t.TempDir(), "full.db")
			if _, err := e.Migrate(ctx(t), full, MigrateOptions{}); err != nil {
				t.Fatal(err)
			}
			want := userSchema(t, full)
			if hc.applied != nil {
				raw := filepath.Join(t.TempDir(), "raw.db")
				var all []string
				for _, m := range e.Migrations() {
					all = append(all, m.File)
				}
				applyRaw(t, raw, os.DirFS(layoutDir(hc.dir)), all)
				if w := userSchema(t, raw); w != want {
					t.Fatalf("shoal's schema differs from the files applied with SQLite:\n%s\nwant:\n%s", want, w)
				}
			}
			p := hc.rawAt(t, e)
			before := tableDump(t, p, hc.table)
			en, err := e.EnrollWith(ctx(t), p, EnrollOptions{From: hc.from, AlembicMap: hc.alembic})
			if err != nil {
				t.Fatalf("enroll --from %s: %v", hc.from, err)
			}
			if en.Version != hc.at || !strings.Contains(en.Source, hc.table) {
				t.Fatalf("%+v, want version %d", en, hc.at)
			}
			if _, err := e.Migrate(ctx(t), p, MigrateOptions{}); err != nil {
				t.Fatal(err)
			}
			if got := userSchema(t, p); got != want {
				t.Fatalf("schema:\n%s\nwant:\n%s", got, want)
			}
			if after := tableDump(t, p, hc.table); after != before {
				t.Fatalf("%s changed", hc.table)
			}
			if hc.down {
				if _, err := e.Down(ctx(t), p, 0); err != nil {
					t.Fatal(err)
				}
				if s := userSchema(t, p); s != "" {
					t.Fatalf("after down: %s", s)
				}
			}
			// Detected without --from (Alembic needs its map).
			if hc.from != "alembic" {
				p = hc.rawAt(t, e)
				if en, err := e.Enroll(ctx(t), p, 0); err != nil || en.Version != hc.at {
					t.Fatalf("detected: %+v %v", en, err)
				}
			}
		})
	}
}

// Histories that cannot be taken over are refused with a reason, and the DB
// is left byte-identical.
func TestAdoptRefusals(t *testing.T) {
	byName := map[string]historyCase{}
	for _, hc := range historyCases() {
		byName[hc.name] = hc
	}
	cases := []struct {
		name, base string
		extra      []string
		from       string
		alembic    map[string]int64
		want       string
	}{
		{"sqlx failed row", "sqlx", []string{`UPDATE _sqlx_migrations SET success = FALSE WHERE version = 20240116110000`}, "sqlx", nil, "failed"},
		{"sqlx checksum", "sqlx", []string{`UPDATE _sqlx_migrations SET checksum = X'00' WHERE version = 20240115100000`}, "sqlx", nil, "20240115100000_create_users.up.sql"},
		{"flyway failed row", "flyway", []string{`INSERT INTO flyway_schema_history (installed_rank, version, description, type, script, checksum, installed_by, execution_time, success) VALUES (3, '2', 'idx', 'SQL', 'V2__users_email_index.sql', 0, 'app', 1, 0)`}, "flyway", nil, "failed row for version 2"},
		{"flyway checksum", "flyway", []string{`UPDATE flyway_schema_history SET checksum = 42 WHERE installed_rank = 2`}, "flyway", nil, "V1_1__create_audit.sql"},
		{"prisma unfinished", "prisma", []string{`INSERT INTO _prisma_migrations (id, checksum, migration_name, started_at) VALUES ('a4', 'x', '20240117120000_users_email_index', 1705312900000)`}, "prisma", nil, "not finished"},
		{"prisma rolled back", "prisma", []string{`UPDATE _prisma_migrations SET rolled_back_at = 1705312900000 WHERE id = 'a3'`}, "prisma", nil, "rolled back"},
		{"prisma checksum", "prisma", []string{`UPDATE _prisma_migrations SET checksum = 'abc' WHERE id = 'a1'`}, "prisma", nil, "20240115100000_create_users/migration.sql"},
		{"dbmate gap", "dbmate", []string{`DELETE FROM schema_migrations WHERE version = '20240115100000'`}, "dbmate", nil, "but not 20240115100000_create_users.sql"},
		{"dbmate ahead", "dbmate", []string{`INSERT INTO schema_migrations VALUES ('20250101000000')`}, "dbmate", nil, "20250101000000, which no migration"},
		{"diesel ahead", "diesel", []string{`INSERT INTO __diesel_schema_migrations (version) VALUES ('20990101000000')`}, "diesel", nil, "ahead"},
		{"alembic no map", "alembic", nil, "", nil, "map file"},
		{"alembic unmapped", "alembic", nil, "alembic", map[string]int64{"other": 1}, "does not name"},
		{"alembic heads", "alembic", []string{`INSERT INTO alembic_version VALUES ('1975ea83b712')`}, "alembic", map[string]int64{"1975ea83b712": 1, "ae1027a6acf": 2}, "2 heads"},
		{"wrong tool", "dbmate", nil, "goose", nil, "no goose history table"},
		{"unknown tool", "dbmate", nil, "liquibase", nil, "unknown tool"},
		{"two tools disagree", "fastmigrate", []string{`CREATE TABLE goose_db_version (id INTEGER PRIMARY KEY AUTOINCREMENT, version_id INTEGER NOT NULL, is_applied INTEGER NOT NULL, tstamp TIMESTAMP DEFAULT (datetime('now')))`,
			`INSERT INTO goose_db_version (version_id, is_applied) VALUES (0, 1), (1, 1)`}, "", nil, "pass --from"},
		{"schema differs", "fastmigrate", []string{`DROP TRIGGER users_audit`}, "fastmigrate", nil, "schema differs"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			hc := byName[tc.base]
			e := layoutEngine(t, hc.dir, "")
			p := hc.rawAt(t, e)
			execAll(t, p, tc.extra...)
			before := fileBytes(t, p)
			_, err := e.EnrollWith(ctx(t), p, EnrollOptions{From: tc.from, AlembicMap: tc.alembic})
			if !errors.Is(err, ErrEnroll) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("want a refusal saying %q, got %v", tc.want, err)
			}
			if !bytes.Equal(before, fileBytes(t, p)) {
				t.Fatal("refused enroll changed the DB")
			}
		})
	}
}

// Flyway's bookkeeping: an undone version is not applied; a baseline marks
// every version up to it applied.
func TestAdoptFlywayUndoAndBaseline(t *testing.T) {
	hc := historyCases()[6]
	if hc.name != "flyway" {
		t.Fatal(hc.name)
	}
	e := layoutEngine(t, "flyway", "")
	p := hc.rawAt(t, e)
	execAll(t, p, "DROP TRIGGER users_audit", "DROP TABLE audit",
		`INSERT INTO flyway_schema_history (installed_rank, version, description, type, script, checksum, installed_by, execution_time, success) VALUES (3, '1.1', 'create audit', 'UNDO_SQL', 'U1_1__create_audit.sql', 0, 'app', 1, 1)`)
	en, err := e.EnrollWith(ctx(t), p, EnrollOptions{From: "flyway"})
	if err != nil || en.Version != 1000 {
		t.Fatalf("%+v %v", en, err)
	}
	p = tempDB(t)
	applyRaw(t, p, os.DirFS(layoutDir("flyway")), []string{"V1__create_users.sql", "V1_1__create_audit.sql", "V2__users_email_index.sql"})
	execAll(t, p, hc.history(t)[0], `INSERT INTO flyway_schema_history (installed_rank, version, description, type, script, checksum, installed_by, execution_time, success) VALUES (1, '2', '<< Flyway Baseline >>', 'BASELINE', '<< Flyway Baseline >>', NULL, 'app', 0, 1)`)
	en, err = e.EnrollWith(ctx(t), p, EnrollOptions{})
	if err != nil || en.Version != 2000 || en.From != "flyway" {
		t.Fatalf("%+v %v", en, err)
	}
	if h := history(t, p); !reflect.DeepEqual(h, []int64{1000, 1001, 2000}) {
		t.Fatal(h)
	}
}

// The Alembic map file: "REVISION VERSION" lines.
func TestParseAlembicMap(t *testing.T) {
	m, err := ParseAlembicMap([]byte("# revisions\n1975ea83b712 1\nae1027a6acf = 2\n\n"))
	if err != nil || !reflect.DeepEqual(m, map[string]int64{"1975ea83b712": 1, "ae1027a6acf": 2}) {
		t.Fatal(m, err)
	}
	for _, bad := range []string{"a\n", "a x\n", "a 0\n", "a 1\na 2\n"} {
		if _, err := ParseAlembicMap([]byte(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// Flyway's checksum ignores line endings and a BOM, like Flyway's.
func TestFlywayChecksum(t *testing.T) {
	a := FlywayChecksum([]byte("CREATE TABLE a (x);\nCREATE TABLE b (x);\n"))
	for _, v := range []string{"CREATE TABLE a (x);\r\nCREATE TABLE b (x);\r\n", "\xef\xbb\xbfCREATE TABLE a (x);\nCREATE TABLE b (x);"} {
		if FlywayChecksum([]byte(v)) != a {
			t.Errorf("%q: %d, want %d", v, FlywayChecksum([]byte(v)), a)
		}
	}
	if FlywayChecksum([]byte("CREATE TABLE a (y);\n")) == a {
		t.Fatal("different text, same checksum")
	}
}

func sha256sum(b []byte) []byte {
	s := sha256.Sum256(b)
	return s[:]
}

// A fleet run with adopt: goose's DB is taken over and migrated on first
// contact; a DB shoal already manages is just migrated; a DB with tables
// and no tool's history, or a dirty history, stays unmanaged (a refusal),
// byte-identical.
func TestMigrateAdopting(t *testing.T) {
	fsys := os.DirFS(layoutDir("goose"))
	e := layoutEngine(t, "goose", "")
	p := tempDB(t)
	gooseUpTo(t, p, fsys, 2)
	res, en, err := e.MigrateAdopting(ctx(t), p, MigrateOptions{}, EnrollOptions{})
	if err != nil || en == nil || en.From != "goose" || en.Version != 2 || res.From != 2 || res.To != 4 || len(res.Applied) != 2 {
		t.Fatalf("%+v %+v %v", res, en, err)
	}
	res, en, err = e.MigrateAdopting(ctx(t), p, MigrateOptions{}, EnrollOptions{})
	if err != nil || en != nil || res.Outcome() != OutcomeCurrent {
		t.Fatalf("second contact: %+v %+v %v", res, en, err)
	}
	plain := tempDB(t)
	execAll(t, plain, "CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT NOT NULL)")
	before := fileBytes(t, plain)
	_, _, err = e.MigrateAdopting(ctx(t), plain, MigrateOptions{}, EnrollOptions{})
	if !errors.Is(err, ErrUnmanaged) || !IsRefusal(err) || !strings.Contains(err.Error(), "no other migration tool's history") {
		t.Fatalf("plain DB: %v", err)
	}
	if !bytes.Equal(before, fileBytes(t, plain)) {
		t.Fatal("refused adopt changed the DB")
	}
	dirty := tempDB(t)
	gooseUpTo(t, dirty, fsys, 1)
	execAll(t, dirty, "CREATE TABLE schema_migrations (version uint64, dirty bool)", "INSERT INTO schema_migrations VALUES (1, 1)")
	_, _, err = e.MigrateAdopting(ctx(t), dirty, MigrateOptions{}, EnrollOptions{From: "golang-migrate"})
	if !errors.Is(err, ErrUnmanaged) || !errors.Is(err, ErrEnroll) || !strings.Contains(err.Error(), "dirty") {
		t.Fatalf("dirty: %v", err)
	}
}
