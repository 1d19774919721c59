package engine

import (
	"database/sql/driver"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"
)

var fnFiles = map[string]string{
	"0001_blobs.sql": "CREATE TABLE t (a BLOB, b TEXT);\nINSERT INTO t (a) VALUES (x'00ff10');\n",
	"0002_b64.sql":   "UPDATE t SET b = BIN2B64(a);\n",
}

func bin2b64(tag string) Function {
	return Function{Name: "BIN2B64", NArgs: 1, Deterministic: true, Fn: func(args []driver.Value) (driver.Value, error) {
		b, _ := args[0].([]byte)
		return tag + base64.StdEncoding.EncodeToString(b), nil
	}}
}

// A data migration calls an application function: without it, SQLite's
// "no such function" is recognised (MissingFunction) and the DB stays at
// version 1; with Options.Functions the migration runs. Two engines in one
// process may register different functions under one name; other
// connections of the process do not get them.
func TestApplicationFunctions(t *testing.T) {
	p := tempDB(t)
	_, err := newEngine(t, fnFiles).Migrate(ctx(t), p, MigrateOptions{})
	if name, ok := MissingFunction(err); !ok || name != "BIN2B64" || !errors.Is(err, ErrMigration) {
		t.Fatalf("want no such function BIN2B64, got %v", err)
	}
	if st, err := newEngine(t, fnFiles).Status(ctx(t), p); err != nil || st.Version != 0 {
		t.Fatalf("a failed run left version %+v %v", st, err)
	}
	newE := func(tag string) *Engine {
		e, err := New(Options{Dir: dir(fnFiles), DirName: "fn", BusyTimeout: 30 * time.Second, Functions: []Function{bin2b64(tag)}})
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	if _, err := newE("").Migrate(ctx(t), p, MigrateOptions{}); err != nil {
		t.Fatal(err)
	}
	var b string
	if err := sqlOpen(t, p).QueryRow("SELECT b FROM t").Scan(&b); err != nil || b != "AP8Q" {
		t.Fatalf("%q %v", b, err)
	}
	p2 := tempDB(t)
	if _, err := newE("two:").Migrate(ctx(t), p2, MigrateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := sqlOpen(t, p2).QueryRow("SELECT b FROM t").Scan(&b); err != nil || b != "two:AP8Q" {
		t.Fatalf("second engine's function: %q %v", b, err)
	}
	if err := sqlOpen(t, p).QueryRow("SELECT BIN2B64(a) FROM t").Scan(&b); err == nil || !strings.Contains(err.Error(), "no such function") {
		t.Fatalf("the process's other connections got the function: %v", err)
	}
}

// Bad function definitions are refused when the engine is built.
func TestApplicationFunctionsRefused(t *testing.T) {
	fn := func(args []driver.Value) (driver.Value, error) { return nil, nil }
	for _, f := range [][]Function{
		{{Name: "bad name", Fn: fn}},
		{{Name: "f"}},
		{{Name: "f", NArgs: -2, Fn: fn}},
		{{Name: "f", NArgs: 1, Fn: fn}, {Name: "F", NArgs: 1, Fn: fn}},
	} {
		if _, err := New(Options{Functions: f}); !errors.Is(err, ErrInvalidDir) {
			t.Errorf("%+v: %v", f, err)
		}
	}
}
