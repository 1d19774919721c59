package engine

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func parseSQLText(t *testing.T, text string) (Migration, error) {
	t.Helper()
	m := Migration{Version: 1, Name: "x", File: "0001_x.sql"}
	err := parseSQLMigration("migs", &m, text)
	return m, err
}

func TestSectionsValid(t *testing.T) {
	tests := []struct {
		name     string
		text     string
		up, down []Statement
		upNoTx   bool
		downNoTx bool
		hasDown  bool
		kind     Kind
	}{
		{name: "no markers: whole file is up",
			text: "CREATE TABLE t(a);\nCREATE INDEX i ON t(a);\n",
			up:   wantStmts("CREATE TABLE t(a);", 1, "CREATE INDEX i ON t(a);", 2), kind: KindSQL},
		{name: "empty file", text: "", kind: KindSQL},
		{name: "comments only", text: "-- nothing yet\n", kind: KindSQL},
		{name: "up and down",
			text: "-- migrate:up\nCREATE TABLE t(a);\n\n-- migrate:down\nDROP TABLE t;\n",
			up:   wantStmts("CREATE TABLE t(a);", 2), down: wantStmts("DROP TABLE t;", 5), hasDown: true, kind: KindSQL},
		{name: "comments and blanks before up",
			text: "-- add t\n/* by me */\n\n-- migrate:up\nCREATE TABLE t(a);\n",
			up:   wantStmts("CREATE TABLE t(a);", 5), kind: KindSQL},
		{name: "up only",
			text: "-- migrate:up\nCREATE TABLE t(a);",
			up:   wantStmts("CREATE TABLE t(a);", 2), kind: KindSQL},
		{name: "empty down is a down",
			text: "-- migrate:up\nCREATE TABLE t(a);\n-- migrate:down\n-- nothing to undo\n",
			up:   wantStmts("CREATE TABLE t(a);", 2), down: []Statement{}, hasDown: true, kind: KindSQL},
		{name: "up transaction:false",
			text: "-- migrate:up transaction:false\nVACUUM;\n-- migrate:down\nSELECT 1;",
			up:   wantStmts("VACUUM;", 2), down: wantStmts("SELECT 1;", 4), upNoTx: true, hasDown: true, kind: KindSQLNoTx},
		{name: "down transaction:false",
			text: "-- migrate:up\nSELECT 1;\n-- migrate:down transaction:false\nVACUUM;",
			up:   wantStmts("SELECT 1;", 2), down: wantStmts("VACUUM;", 4), downNoTx: true, hasDown: true, kind: KindSQL},
		{name: "transaction:true is the default",
			text: "-- migrate:up transaction:true\nSELECT 1;",
			up:   wantStmts("SELECT 1;", 2), kind: KindSQL},
		{name: "dbmate spellings",
			text: "--migrate:up\nSELECT 1;\n  --   migrate:down   transaction:false  \nSELECT 2;",
			up:   wantStmts("SELECT 1;", 2), down: wantStmts("SELECT 2;", 4), downNoTx: true, hasDown: true, kind: KindSQL},
		{name: "marker text inside a string is not a marker",
			text: "-- migrate:up\nINSERT INTO t VALUES('\n-- migrate:down\n');\n",
			up:   wantStmts("INSERT INTO t VALUES('\n-- migrate:down\n');", 2), kind: KindSQL},
		{name: "marker text inside a block comment is not a marker",
			text: "-- migrate:up\n/*\n-- migrate:down\n*/\nSELECT 1;\n",
			up:   wantStmts("SELECT 1;", 5), kind: KindSQL},
		{name: "marker after code on a line is a comment",
			text: "SELECT 1; -- migrate:down\nSELECT 2;",
			up:   wantStmts("SELECT 1;", 1, "SELECT 2;", 2), kind: KindSQL},
		{name: "ordinary comments about migrating",
			text: "-- migrate the users table\n-- migrated by hand\nSELECT 1;",
			up:   wantStmts("SELECT 1;", 3), kind: KindSQL},
		{name: "trigger in a section",
			text: "-- migrate:up\nCREATE TRIGGER tr AFTER INSERT ON t BEGIN\n  SELECT 1;\nEND;\n-- migrate:down\nDROP TRIGGER tr;",
			up:   wantStmts("CREATE TRIGGER tr AFTER INSERT ON t BEGIN\n  SELECT 1;\nEND;", 2), down: wantStmts("DROP TRIGGER tr;", 6), hasDown: true, kind: KindSQL},
		{name: "up without final semicolon before down",
			text: "-- migrate:up\nCREATE TABLE t(a)\n-- migrate:down\nDROP TABLE t",
			up:   wantStmts("CREATE TABLE t(a);", 2), down: wantStmts("DROP TABLE t;", 4), hasDown: true, kind: KindSQL},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := parseSQLText(t, tt.text)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(m.Up, tt.up) || !reflect.DeepEqual(m.Down, tt.down) {
				t.Fatalf("up %#v down %#v\nwant up %#v down %#v", m.Up, m.Down, tt.up, tt.down)
			}
			if m.UpNoTx != tt.upNoTx || m.DownNoTx != tt.downNoTx || m.HasDown != tt.hasDown || m.Kind != tt.kind {
				t.Fatalf("UpNoTx %v DownNoTx %v HasDown %v Kind %v; want %v %v %v %v",
					m.UpNoTx, m.DownNoTx, m.HasDown, m.Kind, tt.upNoTx, tt.downNoTx, tt.hasDown, tt.kind)
			}
			if m.Reversible() != tt.hasDown {
				t.Fatalf("Reversible() = %v", m.Reversible())
			}
			if !tt.hasDown && m.Down != nil {
				t.Fatalf("no down section but Down = %#v", m.Down)
			}
		})
	}
}

func TestSectionsErrors(t *testing.T) {
	tests := []struct {
		name string
		text string
		want []string // all in the error
	}{
		{"down before up", "-- migrate:down\nDROP TABLE t;\n-- migrate:up\nCREATE TABLE t(a);",
			[]string{"line 1", "comes before", "put the up section first"}},
		{"down only", "\n-- migrate:down\nDROP TABLE t;", []string{"line 2", "comes before"}},
		{"two ups", "-- migrate:up\nSELECT 1;\n-- migrate:up\nSELECT 2;",
			[]string{"line 3", "second \"-- migrate:up\"", "line 1", "remove one"}},
		{"two downs", "-- migrate:up\nSELECT 1;\n-- migrate:down\nSELECT 2;\n-- migrate:down\nSELECT 3;",
			[]string{"line 5", "second \"-- migrate:down\"", "line 3"}},
		{"unknown directive", "-- migrate:up transaction:no\nSELECT 1;",
			[]string{"line 1", `unknown directive "transaction:no"`, "transaction:false"}},
		{"unknown directive on down", "-- migrate:up\nSELECT 1;\n-- migrate:down foo\nSELECT 2;",
			[]string{"line 3", `unknown directive "foo"`}},
		{"duplicate directive", "-- migrate:up transaction:false transaction:true\nSELECT 1;",
			[]string{"line 1", "given twice"}},
		{"unknown section", "-- migrate:upgrade\nSELECT 1;", []string{"line 1", `unknown section "upgrade"`}},
		{"capitalised", "-- migrate:Down\nSELECT 1;", []string{"line 1", "malformed section marker"}},
		{"upper-case word", "-- MIGRATE:up\nSELECT 1;", []string{"line 1", "lower case"}},
		{"blank after colon", "-- migrate: up\nSELECT 1;", []string{"line 1", "must follow the colon"}},
		{"blank before colon", "-- migrate :up\nSELECT 1;", []string{"line 1", "malformed"}},
		{"SQL before up", "CREATE TABLE a(x);\n-- migrate:up\nSELECT 1;", []string{"line 1", "belongs to no section", "line 2"}},
		{"unterminated string in up", "-- migrate:up\nSELECT 1;\nSELECT 'x;\n-- migrate:down\nSELECT 2;",
			[]string{"line 3", "unterminated string literal"}},
		{"unterminated trigger in down", "-- migrate:up\nSELECT 1;\n-- migrate:down\n\nCREATE TRIGGER x AFTER INSERT ON t BEGIN SELECT 1;",
			[]string{"line 5", "unterminated CREATE TRIGGER"}},
		{"unterminated comment, no markers", "SELECT 1;\n/*", []string{"line 2", "unterminated /* comment"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := parseSQLText(t, tt.text)
			if err == nil {
				t.Fatalf("no error; up %#v down %#v", m.Up, m.Down)
			}
			var de *DirError
			if !errors.As(err, &de) || !errors.Is(err, ErrInvalidDir) || de.File != "0001_x.sql" || de.Dir != "migs" {
				t.Fatalf("error %#v is not a DirError naming the file", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}
