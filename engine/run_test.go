package engine

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
)

var basic = map[string]string{
	"0001_users.sql": "CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT NOT NULL);",
	"0002_notes.sql": `-- migrate:up
CREATE TABLE notes (id INTEGER PRIMARY KEY, user_id INTEGER REFERENCES users(id) ON DELETE CASCADE, body TEXT);
CREATE INDEX notes_user ON notes(user_id);
-- migrate:down
DROP TABLE notes;`,
}

func TestMigrateFreshThenCurrent(t *testing.T) {
	e := newEngine(t, basic)
	p := tempDB(t)
	res, err := e.Migrate(ctx(t), p, MigrateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.From != 0 || res.To != 2 || len(res.Applied) != 2 || res.Outcome() != OutcomeMigrated {
		t.Fatalf("first run: %+v", res)
	}
	if got := history(t, p); !reflect.DeepEqual(got, []int64{1, 2}) {
		t.Fatalf("history %v", got)
	}
	// A second handle sees it current through the header, a third call the cache.
	for _, eng := range []*Engine{newEngine(t, basic), e} {
		res, err = eng.Migrate(ctx(t), p, MigrateOptions{})
		if err != nil || res.Outcome() != OutcomeCurrent || res.From != 2 || res.To != 2 {
			t.Fatalf("second run: %+v %v", res, err)
		}
	}
	if v, err := newEngine(t, basic).Version(ctx(t), p); err != nil || v != 2 {
		t.Fatalf("Version = %d, %v", v, err)
	}
}

// A failure at the third statement leaves schema and data exactly as before,
// including the migrations of the same run that succeeded before it.
func TestFailureAtThirdStatementLeavesDBAsBefore(t *testing.T) {
	p := tempDB(t)
	e1 := newEngine(t, map[string]string{"0001_a.sql": "CREATE TABLE a (x); INSERT INTO a VALUES (1);"})
	if _, err := e1.Migrate(ctx(t), p, MigrateOptions{}); err != nil {
		t.Fatal(err)
	}
	before := dump(t, p)
	e := newEngine(t, map[string]string{
		"0001_a.sql": "CREATE TABLE a (x); INSERT INTO a VALUES (1);",
		"0002_b.sql": "CREATE TABLE b (y); INSERT INTO a VALUES (2);",
		"0003_c.sql": "INSERT INTO a VALUES (3);\nUPDATE a SET x = x + 10;\nINSERT INTO nosuch VALUES (1);\nINSERT INTO a VALUES (4);",
	})
	_, err := e.Migrate(ctx(t), p, MigrateOptions{})
	var me *Error
	if !errors.As(err, &me) || !errors.Is(err, ErrMigration) {
		t.Fatalf("want a migration *Error, got %v", err)
	}
	if me.File != "0003_c.sql" || me.Statement != 3 || me.Line != 3 || !strings.Contains(me.Error(), "no such table: nosuch") {
		t.Fatalf("error does not name file, statement, line and SQLite's message: %v", me)
	}
	if after := dump(t, p); after != before {
		t.Fatalf("DB changed by a failed run:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	if Outcome(err) != OutcomeFailed {
		t.Fatalf("outcome %s", Outcome(err))
	}
}

// A table rebuild of a parent with ON DELETE CASCADE and SET NULL children
// loses and nulls nothing: foreign keys are off during the run even when the
// connection had them on.
func TestParentRebuildKeepsChildren(t *testing.T) {
	p := tempDB(t)
	files := map[string]string{
		"0001_schema.sql": `CREATE TABLE parent (id INTEGER PRIMARY KEY, name TEXT);
CREATE TABLE cascade_child (id INTEGER PRIMARY KEY, parent_id INTEGER REFERENCES parent(id) ON DELETE CASCADE);
CREATE TABLE setnull_child (id INTEGER PRIMARY KEY, parent_id INTEGER REFERENCES parent(id) ON DELETE SET NULL);`,
	}
	e := newEngine(t, files)
	if _, err := e.Migrate(ctx(t), p, MigrateOptions{}); err != nil {
		t.Fatal(err)
	}
	execAll(t, p, "INSERT INTO parent VALUES (1,'a'),(2,'b')",
		"INSERT INTO cascade_child VALUES (10,1),(11,2)", "INSERT INTO setnull_child VALUES (20,1),(21,2)")
	files["0002_rebuild.sql"] = `CREATE TABLE parent_new (id INTEGER PRIMARY KEY, name TEXT NOT NULL DEFAULT '', extra INTEGER);
INSERT INTO parent_new (id, name) SELECT id, name FROM parent;
DROP TABLE parent;
ALTER TABLE parent_new RENAME TO parent;`
	e = newEngine(t, files)
	// PRAGMA foreign_keys=ON in the DSN would not survive: set it on the pool by hand is
	// impossible from here, so the engine must switch it off itself; prove it by a
	// migration that fails if enforcement were on.
	if _, err := e.Migrate(ctx(t), p, MigrateOptions{}); err != nil {
		t.Fatal(err)
	}
	db := sqlOpen(t, p)
	var n, nulls int
	db.QueryRow("SELECT count(*) FROM cascade_child").Scan(&n)
	db.QueryRow("SELECT count(*) FROM setnull_child WHERE parent_id IS NULL").Scan(&nulls)
	if n != 2 || nulls != 0 {
		t.Fatalf("rebuild lost children: cascade rows %d (want 2), nulled %d (want 0)", n, nulls)
	}
}

// With foreign keys ON in the connection, the engine switches them off
// before BEGIN: the same rebuild run through apply with fk on keeps children.
func TestForeignKeysOffEvenWhenConnectionHadThemOn(t *testing.T) {
	p := tempDB(t)
	execAll(t, p, `CREATE TABLE parent (id INTEGER PRIMARY KEY)`,
		`CREATE TABLE child (id INTEGER PRIMARY KEY, pid INTEGER REFERENCES parent(id) ON DELETE CASCADE)`,
		`INSERT INTO parent VALUES (1)`, `INSERT INTO child VALUES (1, 1)`)
	e := newEngine(t, map[string]string{"0001_x.sql": `DROP TABLE parent; CREATE TABLE parent (id INTEGER PRIMARY KEY, v TEXT); INSERT INTO parent (id) VALUES (1);`})
	db, err := openDB(p, e.opts.BusyTimeout, false)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	conn, _ := db.Conn(ctx(t))
	defer conn.Close()
	if _, err := conn.ExecContext(ctx(t), "PRAGMA foreign_keys = ON"); err != nil {
		t.Fatal(err)
	}
	st := &dbState{applied: map[int64]HistoryRow{}}
	res := &Result{}
	m := &e.migrations[0]
	s := &session{e: e, path: p, conn: conn, st: st}
	if err := s.apply(ctx(t), []*Migration{m}, applyOptions{}, res); err != nil {
		t.Fatal(err)
	}
	var n, fk int
	conn.QueryRowContext(ctx(t), "SELECT count(*) FROM child").Scan(&n)
	conn.QueryRowContext(ctx(t), "PRAGMA foreign_keys").Scan(&fk)
	if n != 1 || fk != 1 {
		t.Fatalf("child rows %d (want 1), foreign_keys after run %d (want 1, restored)", n, fk)
	}
}

// Violations the run introduces roll it back and are listed; violations the
// DB already had do not block it.
func TestForeignKeyViolationsRollBack(t *testing.T) {
	p := tempDB(t)
	files := map[string]string{"0001_s.sql": `CREATE TABLE parent (id INTEGER PRIMARY KEY); CREATE TABLE child (id INTEGER PRIMARY KEY, pid INTEGER REFERENCES parent(id));`}
	if _, err := newEngine(t, files).Migrate(ctx(t), p, MigrateOptions{}); err != nil {
		t.Fatal(err)
	}
	before := dump(t, p)
	files["0002_bad.sql"] = `INSERT INTO child VALUES (1, 42);`
	_, err := newEngine(t, files).Migrate(ctx(t), p, MigrateOptions{})
	if !errors.Is(err, ErrForeignKey) || !strings.Contains(err.Error(), "child rowid 1 -> parent") {
		t.Fatalf("want a listed foreign-key violation, got %v", err)
	}
	if dump(t, p) != before {
		t.Fatal("a rolled-back run changed the DB")
	}
	// A pre-existing violation is tolerated.
	execAll(t, p, "INSERT INTO child VALUES (7, 99)")
	files["0002_bad.sql"] = `INSERT INTO parent VALUES (1); INSERT INTO child VALUES (1, 1);`
	if _, err := newEngine(t, files).Migrate(ctx(t), p, MigrateOptions{}); err != nil {
		t.Fatalf("pre-existing violation blocked the run: %v", err)
	}
}

// Every refusal is a distinct typed error and leaves the file byte-identical.
func TestRefusalsLeaveFileByteIdentical(t *testing.T) {
	mk := func(t *testing.T, stmts ...string) string {
		p := tempDB(t)
		execAll(t, p, stmts...)
		return p
	}
	cases := []struct {
		name    string
		setup   func(t *testing.T) string
		files   map[string]string
		opts    MigrateOptions
		want    error
		outcome string
	}{
		{"unmanaged", func(t *testing.T) string { return mk(t, "CREATE TABLE app (x)") }, basic, MigrateOptions{}, ErrUnmanaged, OutcomeUnmanaged},
		{"ahead", func(t *testing.T) string {
			p := tempDB(t)
			newEngine(t, basic).Migrate(ctx(t), p, MigrateOptions{})
			return p
		}, map[string]string{"0001_users.sql": basic["0001_users.sql"]}, MigrateOptions{}, ErrAhead, OutcomeAhead},
		{"changed", func(t *testing.T) string {
			p := tempDB(t)
			newEngine(t, map[string]string{"0001_users.sql": basic["0001_users.sql"]}).Migrate(ctx(t), p, MigrateOptions{})
			return p
		}, map[string]string{"0001_users.sql": "CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT);", "0002_x.sql": "CREATE TABLE x (y);"}, MigrateOptions{}, ErrChanged, OutcomeChanged},
		{"out_of_order", func(t *testing.T) string {
			p := tempDB(t)
			newEngine(t, map[string]string{"0002_notes.sql": "CREATE TABLE n (x);"}).Migrate(ctx(t), p, MigrateOptions{})
			return p
		}, map[string]string{"0001_users.sql": "CREATE TABLE u (x);", "0002_notes.sql": "CREATE TABLE n (x);"}, MigrateOptions{}, ErrOutOfOrder, OutcomeOutOfOrder},
		{"text file", func(t *testing.T) string {
			p := tempDB(t)
			os.WriteFile(p, []byte("hello, this is not a database at all, but it is long enough to have a header of a hundred bytes or more.\n"), 0o644)
			return p
		}, basic, MigrateOptions{}, ErrCorrupt, OutcomeCorrupt},
		{"truncated", func(t *testing.T) string {
			p := mk(t, "CREATE TABLE app (x)")
			b := fileBytes(t, p)
			os.WriteFile(p, b[:60], 0o644)
			return p
		}, basic, MigrateOptions{}, ErrCorrupt, OutcomeCorrupt},
		{"garbage after header", func(t *testing.T) string {
			p := tempDB(t)
			newEngine(t, map[string]string{"0001_users.sql": basic["0001_users.sql"]}).Migrate(ctx(t), p, MigrateOptions{})
			b := fileBytes(t, p)
			for i := 100; i < len(b); i++ {
				b[i] = byte(i * 7)
			}
			os.WriteFile(p, b, 0o644)
			return p
		}, basic, MigrateOptions{}, ErrCorrupt, OutcomeCorrupt},
		{"directory", func(t *testing.T) string {
			p := filepath.Join(t.TempDir(), "dir.db")
			os.Mkdir(p, 0o755)
			return p
		}, basic, MigrateOptions{}, ErrCorrupt, OutcomeCorrupt},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := tc.setup(t)
			var before []byte
			if st, _ := os.Stat(p); !st.IsDir() {
				before = fileBytes(t, p)
			}
			_, err := newEngine(t, tc.files).Migrate(ctx(t), p, tc.opts)
			if !errors.Is(err, tc.want) {
				t.Fatalf("want %v, got %v", tc.want, err)
			}
			if Outcome(err) != tc.outcome || !IsRefusal(err) {
				t.Fatalf("outcome %q, want %q", Outcome(err), tc.outcome)
			}
			var dbe *Error
			if !errors.As(err, &dbe) || dbe.Path != p {
				t.Fatalf("error does not name the file: %v", err)
			}
			if before != nil && !bytes.Equal(fileBytes(t, p), before) {
				t.Fatal("refused DB was modified")
			}
			for _, side := range []string{"-journal", "-wal", lockSuffix, snapshotSuffix} {
				if _, err := os.Stat(p + side); err == nil && side != lockSuffix {
					t.Fatalf("refusal left %s behind", side)
				}
			}
		})
	}
}

// --allow-changed and --allow-out-of-order let a run through.
func TestAllowChangedAndOutOfOrder(t *testing.T) {
	p := tempDB(t)
	newEngine(t, map[string]string{"0002_b.sql": "CREATE TABLE b (x);"}).Migrate(ctx(t), p, MigrateOptions{})
	e := newEngine(t, map[string]string{"0001_a.sql": "CREATE TABLE a (x);", "0002_b.sql": "CREATE TABLE b (x); -- edited"})
	if _, err := e.Migrate(ctx(t), p, MigrateOptions{AllowOutOfOrder: true}); !errors.Is(err, ErrChanged) {
		t.Fatalf("want changed, got %v", err)
	}
	res, err := e.Migrate(ctx(t), p, MigrateOptions{AllowOutOfOrder: true, AllowChanged: true})
	if err != nil || len(res.Applied) != 1 || res.Applied[0].Version != 1 {
		t.Fatalf("%+v %v", res, err)
	}
}

func TestMustExistNeverCreates(t *testing.T) {
	p := tempDB(t)
	_, err := newEngine(t, basic).Migrate(ctx(t), p, MigrateOptions{MustExist: true})
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("want ErrNotFound, got %v", err)
	}
	if _, err := os.Stat(p); !os.IsNotExist(err) {
		t.Fatal("MustExist created the file")
	}
}

func TestDryRunAndTo(t *testing.T) {
	p := tempDB(t)
	e := newEngine(t, basic)
	res, err := e.Migrate(ctx(t), p, MigrateOptions{DryRun: true})
	if err != nil || len(res.Pending) != 2 {
		t.Fatalf("%+v %v", res, err)
	}
	if _, err := os.Stat(p); !os.IsNotExist(err) {
		t.Fatal("dry run created the file")
	}
	res, err = e.Migrate(ctx(t), p, MigrateOptions{To: 1})
	if err != nil || res.To != 1 {
		t.Fatalf("%+v %v", res, err)
	}
	before := fileBytes(t, p)
	res, err = e.Migrate(ctx(t), p, MigrateOptions{DryRun: true})
	if err != nil || len(res.Pending) != 1 || res.Pending[0].Version != 2 || !bytes.Equal(before, fileBytes(t, p)) {
		t.Fatalf("dry run on version 1: %+v %v", res, err)
	}
	if v, _ := e.Version(ctx(t), p); v != 1 {
		t.Fatalf("version %d", v)
	}
}

// The cache is invalidated when the file is replaced, even by a file of the
// same size: a DB at head through one handle, swapped for an older one.
func TestCacheRecheckReplacedFile(t *testing.T) {
	dirp := t.TempDir()
	p, old := filepath.Join(dirp, "t.db"), filepath.Join(dirp, "old.db")
	e := newEngine(t, basic)
	if _, err := e.Migrate(ctx(t), p, MigrateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Migrate(ctx(t), old, MigrateOptions{To: 1}); err != nil {
		t.Fatal(err)
	}
	if v, _ := e.Version(ctx(t), p); v != 2 {
		t.Fatal("not at head")
	}
	if err := os.Rename(old, p); err != nil {
		t.Fatal(err)
	}
	if v, _ := e.Version(ctx(t), p); v != 1 {
		t.Fatalf("replaced file not re-read: version %d", v)
	}
	res, err := e.Migrate(ctx(t), p, MigrateOptions{})
	if err != nil || len(res.Applied) != 1 {
		t.Fatalf("replaced file not migrated: %+v %v", res, err)
	}
	os.Remove(p)
	if v, err := e.Version(ctx(t), p); v != 0 || err != nil {
		t.Fatalf("deleted file: %d %v", v, err)
	}
}

// An app that uses user_version keeps it: shoal only takes it when unused.
func TestUserVersionOfAppIsRespected(t *testing.T) {
	p := tempDB(t)
	execAll(t, p, "PRAGMA user_version = 77")
	e := newEngine(t, basic)
	if _, err := e.Migrate(ctx(t), p, MigrateOptions{}); err != nil {
		t.Fatal(err)
	}
	db := sqlOpen(t, p)
	var uv int64
	db.QueryRow("PRAGMA user_version").Scan(&uv)
	if uv != 77 {
		t.Fatalf("user_version %d, want the app's 77", uv)
	}
	if v, err := newEngine(t, basic).Version(ctx(t), p); err != nil || v != 2 {
		t.Fatalf("version %d %v", v, err)
	}
}

// One transaction per migration is an option.
func TestPerMigration(t *testing.T) {
	p := tempDB(t)
	files := map[string]string{"0001_a.sql": "CREATE TABLE a (x);", "0002_b.sql": "CREATE TABLE b (x); SELECT * FROM nosuch;"}
	_, err := newEngine(t, files).Migrate(ctx(t), p, MigrateOptions{PerMigration: true})
	if !errors.Is(err, ErrMigration) {
		t.Fatal(err)
	}
	if got := history(t, p); !reflect.DeepEqual(got, []int64{1}) {
		t.Fatalf("per-migration run kept %v, want [1]", got)
	}
}

// Goroutines racing on one fresh file: each migration exactly once, every
// caller succeeds.
func TestGoroutinesRaceOnOneFile(t *testing.T) {
	files := raceMigrations(8)
	p := tempDB(t)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e := newEngine(t, files) // separate handles, as separate workers would have
			_, err := e.Migrate(ctx(t), p, MigrateOptions{})
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	checkRaceRows(t, p, 8)
}

// raceMigrations makes n migrations that each insert one row.
func raceMigrations(n int) map[string]string {
	files := map[string]string{"0001_t.sql": "CREATE TABLE t (v INTEGER NOT NULL);"}
	for i := 2; i <= n; i++ {
		files[pad(i)+"_ins.sql"] = "INSERT INTO t VALUES (" + itoa(int64(i)) + ");"
	}
	return files
}

func pad(i int) string { s := itoa(int64(i)); return strings.Repeat("0", 4-len(s)) + s }

func checkRaceRows(t *testing.T, p string, n int) {
	t.Helper()
	db := sqlOpen(t, p)
	var rows, distinct int
	db.QueryRow("SELECT count(*), count(DISTINCT v) FROM t").Scan(&rows, &distinct)
	if rows != n-1 || distinct != n-1 {
		t.Fatalf("rows %d distinct %d, want %d each: a migration ran twice or not at all", rows, distinct, n-1)
	}
	if h := history(t, p); len(h) != n {
		t.Fatalf("history %v", h)
	}
}

// In WAL mode a commit by another process lands in the -wal file only; the
// main file's mtime and header stay stale. The cache must still notice.
func TestCacheSeesCommitsInWAL(t *testing.T) {
	files := map[string]string{
		"0001_a.sql": "-- migrate:up\nCREATE TABLE a (x);\n-- migrate:down\nDROP TABLE a;\n",
		"0002_b.sql": "-- migrate:up\nCREATE TABLE b (x);\n-- migrate:down\nDROP TABLE b;\n",
	}
	p := tempDB(t)
	execAll(t, p, "PRAGMA journal_mode = WAL")
	e1, e2 := newEngine(t, files), newEngine(t, files)
	if _, err := e1.Migrate(ctx(t), p, MigrateOptions{}); err != nil {
		t.Fatal(err)
	}
	// A reader holding the DB open keeps the WAL from being checkpointed on close.
	hold := sqlOpen(t, p)
	hold.SetMaxOpenConns(1)
	var n int
	if err := hold.QueryRow("SELECT count(*) FROM a").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if v, _ := e1.Version(ctx(t), p); v != 2 {
		t.Fatalf("version %d", v)
	}
	before, _ := statID(p)
	if _, err := e2.Down(ctx(t), p, 1); err != nil {
		t.Fatal(err)
	}
	if after, _ := statID(p); after != before {
		t.Log("main file changed too; the WAL-only case was not reached on this filesystem")
	}
	if v, err := e1.Version(ctx(t), p); err != nil || v != 1 {
		t.Fatalf("cached handle reports %d after another handle went down to 1 in WAL mode (%v)", v, err)
	}
}

// A fresh handle trusts the header read from the file only when it is a
// committed state: rollback-journal mode, no -journal beside it, the file
// unchanged since the stat before the read.
func TestHeaderTrustedOnlyWhenCommitted(t *testing.T) {
	e := newEngine(t, basic)
	p := tempDB(t)
	if _, err := e.Migrate(ctx(t), p, MigrateOptions{}); err != nil {
		t.Fatal(err)
	}
	info, err := inspectFile(p)
	fp, hdr := info.fp, info.hdr
	if err != nil || !info.exists || !e.headerAtHead(p, fp, hdr) {
		t.Fatal("a DB at head in rollback mode is not recognised from its header")
	}
	if newEngine(t, map[string]string{"0001_users.sql": basic["0001_users.sql"]}).headerAtHead(p, fp, hdr) {
		t.Fatal("the header matched another migration set")
	}
	// A journal beside the file: a transaction in progress or to roll back.
	os.WriteFile(p+"-journal", []byte("x"), 0o644)
	if e.headerAtHead(p, fp, hdr) {
		t.Fatal("header trusted with a -journal beside the DB")
	}
	os.Remove(p + "-journal")
	// The file changed after the stat that preceded the read.
	execAll(t, p, "CREATE TABLE later (x)")
	if e.headerAtHead(p, fp, hdr) {
		t.Fatal("header trusted although the file changed after it was read")
	}
	// WAL mode: the file's header is stale until a checkpoint.
	execAll(t, p, "PRAGMA journal_mode = WAL")
	info, _ = inspectFile(p)
	if e.headerAtHead(p, info.fp, info.hdr) {
		t.Fatal("header trusted in WAL mode")
	}
	if v, err := newEngine(t, basic).Version(ctx(t), p); err != nil || v != 2 {
		t.Fatalf("WAL DB through SQLite: %d %v", v, err)
	}
}
