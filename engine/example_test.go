package engine_test

import (
	"context"
	"database/sql"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"testing/fstest"

	"github.com/shoal-dev/shoal/engine"
)

// migrations is a migrations directory held in memory; a program would
// usually embed its own (//go:embed migrations) or open one with
// [engine.OpenDir].
var migrations = fstest.MapFS{
	"0001_create_users.sql": {Data: []byte("CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT NOT NULL);")},
	"0002_add_name.sql": {Data: []byte(`-- migrate:up
ALTER TABLE users ADD COLUMN name TEXT;
-- migrate:down
ALTER TABLE users DROP COLUMN name;
`)},
}

// tempDir is a scratch directory for the examples' database files.
func tempDir() string {
	d, err := os.MkdirTemp("", "shoal-example-")
	if err != nil {
		log.Fatal(err)
	}
	return d
}

// Migrate one database file to the newest migration: a missing file is
// created, an up-to-date one is left alone.
func ExampleEngine_Migrate() {
	dir := tempDir()
	defer os.RemoveAll(dir)

	e, err := engine.New(engine.Options{Dir: migrations, DirName: "migrations"})
	if err != nil {
		log.Fatal(err) // an invalid directory: *engine.DirError, errors.Is(err, engine.ErrInvalidDir)
	}
	res, err := e.Migrate(context.Background(), filepath.Join(dir, "tenant.db"), engine.MigrateOptions{})
	if err != nil {
		log.Fatal(err) // errors.Is(err, engine.ErrMigration), engine.ErrUnmanaged, ...
	}
	fmt.Println(res.Outcome(), res.From, "->", res.To)
	for _, a := range res.Applied {
		fmt.Println("applied", a.File)
	}
	// Output:
	// migrated 0 -> 2
	// applied 0001_create_users.sql
	// applied 0002_add_name.sql
}

// At application start-up, or on the first use of each tenant's database,
// call Migrate before opening the DB: one Engine for the whole process
// keeps a cache of files it verified at head, so the check on every later
// use costs about one stat() and takes no lock.
func ExampleEngine_Migrate_onFirstUse() {
	dir := tempDir()
	defer os.RemoveAll(dir)

	e, err := engine.New(engine.Options{Dir: migrations, DirName: "migrations"})
	if err != nil {
		log.Fatal(err)
	}
	open := func(ctx context.Context, tenant string) (*sql.DB, error) {
		path := filepath.Join(dir, tenant+".db")
		res, err := e.Migrate(ctx, path, engine.MigrateOptions{})
		if err != nil {
			return nil, err
		}
		fmt.Println(tenant, res.Outcome())
		return sql.Open("sqlite", path)
	}
	ctx := context.Background()
	for i := 0; i < 3; i++ { // three requests for tenant "acme"
		db, err := open(ctx, "acme")
		if err != nil {
			log.Fatal(err)
		}
		var n int
		if err := db.QueryRowContext(ctx, "SELECT count(*) FROM users").Scan(&n); err != nil {
			log.Fatal(err)
		}
		db.Close()
	}
	st, err := e.Status(ctx, filepath.Join(dir, "acme.db"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("version", st.Version, "of", st.Head)
	// Output:
	// acme migrated
	// acme current
	// acme current
	// version 2 of 2
}

// A migration written in Go runs inside the run's transaction, between the
// files of lower and higher versions.
func ExampleGoMigration() {
	dir := tempDir()
	defer os.RemoveAll(dir)

	backfill := engine.GoMigration{
		Version: 3,
		Name:    "backfill_names",
		Up: func(ctx context.Context, tx *sql.Tx) error {
			_, err := tx.ExecContext(ctx, "UPDATE users SET name = substr(email, 1, instr(email, '@') - 1) WHERE name IS NULL")
			return err
		},
		Down: func(ctx context.Context, tx *sql.Tx) error { return nil },
	}
	e, err := engine.New(engine.Options{Dir: migrations, DirName: "migrations", Go: []engine.GoMigration{backfill}})
	if err != nil {
		log.Fatal(err)
	}
	res, err := e.Migrate(context.Background(), filepath.Join(dir, "tenant.db"), engine.MigrateOptions{})
	if err != nil {
		log.Fatal(err)
	}
	for _, a := range res.Applied {
		fmt.Println(a.Version, a.Name)
	}
	// Output:
	// 1 create_users
	// 2 add_name
	// 3 backfill_names
}

// Status reads where a database stands without changing it (a missing
// file is not created).
func ExampleEngine_Status() {
	dir := tempDir()
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "tenant.db")

	e, err := engine.New(engine.Options{Dir: migrations, DirName: "migrations"})
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	if _, err := e.Migrate(ctx, path, engine.MigrateOptions{To: 1}); err != nil {
		log.Fatal(err)
	}
	st, err := e.Status(ctx, path)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("version %d, head %d\n", st.Version, st.Head)
	for _, p := range st.Pending {
		fmt.Println("pending", p.File)
	}
	// Output:
	// version 1, head 2
	// pending 0002_add_name.sql
}
