package engine

import (
	"errors"
	"testing"
)

// A DB in WAL mode: a failing transaction:false step leaves it unchanged
// like in rollback mode (the step ran on a private copy, itself a WAL DB),
// and the DB stays in WAL mode.
func TestNoTxStepFailureLeavesWALDatabaseUnchanged(t *testing.T) {
	p := tempDB(t)
	execAll(t, p, "PRAGMA journal_mode = WAL")
	files := map[string]string{
		"0001_a.sql": "CREATE TABLE a (x); INSERT INTO a VALUES (1);",
		"0002_b.sql": "-- migrate:up transaction:false\nINSERT INTO a VALUES (2);\nINSERT INTO nosuch VALUES (1);\n",
	}
	if _, err := newEngine(t, files).Migrate(ctx(t), p, MigrateOptions{To: 1}); err != nil {
		t.Fatal(err)
	}
	before := dump(t, p)
	_, err := newEngine(t, files).Migrate(ctx(t), p, MigrateOptions{})
	var me *Error
	if !errors.As(err, &me) || me.Statement != 2 {
		t.Fatalf("want statement 2 to fail, got %v", err)
	}
	if after := dump(t, p); after != before {
		t.Fatalf("WAL DB changed:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	var mode string
	sqlOpen(t, p).QueryRow("PRAGMA journal_mode").Scan(&mode)
	if mode != "wal" {
		t.Fatalf("journal mode after the failed step: %s", mode)
	}
}
