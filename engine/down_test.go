package engine

import (
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"
)

func TestDownThenUpAgain(t *testing.T) {
	p := tempDB(t)
	files := map[string]string{
		"0001_a.sql": "-- migrate:up\nCREATE TABLE a (x);\n-- migrate:down\nDROP TABLE a;\n",
		"0002_b.sql": "-- migrate:up\nCREATE TABLE b (x);\n-- migrate:down\nDROP TABLE b;\n",
		"0003_c.sql": "-- migrate:up\nCREATE TABLE c (x);\n-- migrate:down\nDROP TABLE c;\n",
	}
	e := newEngine(t, files)
	if _, err := e.Migrate(ctx(t), p, MigrateOptions{To: 1}); err != nil {
		t.Fatal(err)
	}
	at1 := dump(t, p)
	if _, err := e.Migrate(ctx(t), p, MigrateOptions{}); err != nil {
		t.Fatal(err)
	}
	res, err := e.Down(ctx(t), p, 1)
	if err != nil || res.From != 3 || res.To != 1 || len(res.Applied) != 2 || res.Applied[0].Version != 3 {
		t.Fatalf("%+v %v", res, err)
	}
	if got := dump(t, p); got != at1 {
		t.Fatalf("down to 1 differs from up to 1:\n%s\n%s", at1, got)
	}
	// The cache must not keep calling it current.
	if v, _ := e.Version(ctx(t), p); v != 1 {
		t.Fatalf("version after down %d", v)
	}
	if _, err := e.Migrate(ctx(t), p, MigrateOptions{}); err != nil {
		t.Fatal(err)
	}
	if h := history(t, p); !reflect.DeepEqual(h, []int64{1, 2, 3}) {
		t.Fatalf("history %v", h)
	}
}

func TestDownRefusesWithoutDownPart(t *testing.T) {
	p := tempDB(t)
	files := map[string]string{
		"0001_a.sql": "-- migrate:up\nCREATE TABLE a (x);\n-- migrate:down\nDROP TABLE a;\n",
		"0002_b.sql": "CREATE TABLE b (x);",
		"0003_c.sql": "-- migrate:up\nCREATE TABLE c (x);\n-- migrate:down\nDROP TABLE c;\n",
	}
	e := newEngine(t, files)
	if _, err := e.Migrate(ctx(t), p, MigrateOptions{}); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(p)
	_, err := e.Down(ctx(t), p, 0)
	if !errors.Is(err, ErrNoDown) || !strings.Contains(err.Error(), "0002_b.sql") {
		t.Fatalf("want ErrNoDown naming 0002_b.sql, got %v", err)
	}
	after, _ := os.ReadFile(p)
	if string(before) != string(after) {
		t.Fatal("refused down touched the DB")
	}
}
