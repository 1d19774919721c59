package engine

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"testing/fstest"
)

func mapFile(s string) *fstest.MapFile { return &fstest.MapFile{Data: []byte(s)} }

func srcNoopGo(context.Context, *sql.Tx) error { return nil }

func TestLoadMigrations(t *testing.T) {
	fsys := fstest.MapFS{
		"0001_create_users.sql": mapFile("-- migrate:up\nCREATE TABLE users(id INTEGER PRIMARY KEY);\n-- migrate:down\nDROP TABLE users;\n"),
		"0002-backfill.sh":      mapFile("#!/bin/sh\nsqlite3 \"$1\" 'UPDATE users SET id = id'\n"),
		"0003_more.py":          mapFile("import sys\nprint(sys.argv[1])\n"),
		"0005_vacuum.sql":       mapFile("-- migrate:up transaction:false\nVACUUM;\n"),
		"10_plain.sql":          mapFile("CREATE TABLE a(x);\nCREATE TABLE b(y);"),
		"README.md":             mapFile("0001 is first"),
		"readme":                mapFile(""),
		".hidden.sql":           mapFile("garbage"),
		"schema.sql":            mapFile("CREATE TABLE users(id INTEGER PRIMARY KEY);"),
		"shoal.sum":             mapFile("whatever"),
		"notes.txt":             mapFile("x"),
		"sub/0004_nested.sql":   mapFile("this is not read"),
		"0006_dir.sql/x":        mapFile("a directory named like a migration is ignored"),
		"0007/y":                mapFile("so is one named like a broken migration"),
	}
	gos := []GoMigration{
		{Version: 4, Name: "go_step", Up: srcNoopGo},
		{Version: 6, Name: "reversible", Up: srcNoopGo, Down: srcNoopGo},
	}
	got, err := loadMigrations(fsys, "migs", gos)
	if err != nil {
		t.Fatal(err)
	}
	var versions []int64
	for _, m := range got {
		versions = append(versions, m.Version)
	}
	if want := []int64{1, 2, 3, 4, 5, 6, 10}; !reflect.DeepEqual(versions, want) {
		t.Fatalf("versions %v, want %v", versions, want)
	}

	m := got[0]
	if m.File != "0001_create_users.sql" || m.Name != "create_users" || m.Kind != KindSQL || !m.HasDown ||
		!reflect.DeepEqual(m.Up, wantStmts("CREATE TABLE users(id INTEGER PRIMARY KEY);", 2)) ||
		!reflect.DeepEqual(m.Down, wantStmts("DROP TABLE users;", 4)) ||
		m.Checksum != Checksum(fsys["0001_create_users.sql"].Data) || m.Script != nil || m.Go != nil {
		t.Errorf("0001: %+v", m)
	}
	m = got[1]
	if m.File != "0002-backfill.sh" || m.Name != "backfill" || m.Kind != KindScript || m.Interpreter != "sh" ||
		string(m.Script) != string(fsys["0002-backfill.sh"].Data) || m.HasDown || m.Up != nil ||
		m.Checksum != Checksum(fsys["0002-backfill.sh"].Data) {
		t.Errorf("0002: %+v", m)
	}
	m = got[2]
	if m.Kind != KindScript || m.Interpreter != "python3" || m.HasDown || m.Name != "more" {
		t.Errorf("0003: %+v", m)
	}
	m = got[3]
	if m.File != "go:4_go_step" || m.Name != "go_step" || m.Kind != KindGo || m.HasDown || m.Go == nil ||
		m.Go.Version != 4 || m.Checksum != Checksum([]byte("go:4:go_step")) {
		t.Errorf("go 4: %+v", m)
	}
	m = got[4]
	if m.Kind != KindSQLNoTx || !m.UpNoTx || m.HasDown || m.Down != nil || !reflect.DeepEqual(m.Up, wantStmts("VACUUM;", 2)) {
		t.Errorf("0005: %+v", m)
	}
	m = got[5]
	if m.File != "go:6_reversible" || !m.HasDown || !m.Reversible() || m.Go.Down == nil {
		t.Errorf("go 6: %+v", m)
	}
	m = got[6]
	if m.File != "10_plain.sql" || m.Kind != KindSQL || m.HasDown ||
		!reflect.DeepEqual(m.Up, wantStmts("CREATE TABLE a(x);", 1, "CREATE TABLE b(y);", 2)) {
		t.Errorf("10: %+v", m)
	}
}

func TestLoadMigrationsEmpty(t *testing.T) {
	for name, fsys := range map[string]fstest.MapFS{
		"empty":         {},
		"only ignored":  {"README": mapFile("x"), ".git/HEAD": mapFile("x"), "schema.sql": mapFile("x"), "shoal.sum": mapFile("")},
		"only dirs":     {"0001_x.sql/a": mapFile("x")},
		"helper in dir": {"lib/notes.sql": mapFile("DROP TABLE users;")},
	} {
		got, err := loadMigrations(fsys, "migs", nil)
		if err != nil || len(got) != 0 {
			t.Errorf("%s: %v, %v; want no migrations", name, got, err)
		}
	}
	got, err := loadMigrations(nil, "", []GoMigration{{Version: 1, Name: "only_go", Up: srcNoopGo}})
	if err != nil || len(got) != 1 || got[0].Kind != KindGo {
		t.Errorf("nil fsys with a Go migration: %v, %v", got, err)
	}
}

func TestLoadMigrationsNormalises(t *testing.T) {
	lf := "-- migrate:up\nCREATE TABLE t(a);\nINSERT INTO t VALUES('x\ny');\n-- migrate:down\nDROP TABLE t;\n"
	crlf := "\xef\xbb\xbf" + strings.ReplaceAll(lf, "\n", "\r\n")
	a, err := loadMigrations(fstest.MapFS{"0001_x.sql": mapFile(lf)}, "migs", nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := loadMigrations(fstest.MapFS{"0001_x.sql": mapFile(crlf)}, "migs", nil)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(a, b) {
		t.Fatalf("BOM+CRLF file parsed differently:\n%+v\n%+v", a, b)
	}
	if a[0].Up[1].SQL != "INSERT INTO t VALUES('x\ny');" {
		t.Fatalf("CRLF inside a string not normalised: %q", b[0].Up[1].SQL)
	}
}

// wantDirError checks err is a *DirError naming dir, file (and other), and
// mentioning every string in want.
func wantDirError(t *testing.T, err error, dir, file, other string, want ...string) {
	t.Helper()
	var de *DirError
	if !errors.As(err, &de) {
		t.Fatalf("error %v (%T) is not a *DirError", err, err)
	}
	if !errors.Is(err, ErrInvalidDir) {
		t.Fatalf("error %v does not wrap ErrInvalidDir", err)
	}
	if de.Dir != dir || de.File != file || de.Other != other {
		t.Fatalf("error %q names dir %q file %q other %q; want %q %q %q", err, de.Dir, de.File, de.Other, dir, file, other)
	}
	msg := err.Error()
	for _, w := range append([]string{dir, file, other}, want...) {
		if !strings.Contains(msg, w) {
			t.Errorf("error %q does not mention %q", msg, w)
		}
	}
}

func TestLoadMigrationsErrors(t *testing.T) {
	ok := "CREATE TABLE t(a);"
	tests := []struct {
		name        string
		fsys        fstest.MapFS
		gos         []GoMigration
		file, other string
		want        []string
	}{
		{name: "duplicate versions", fsys: fstest.MapFS{"0001_a.sql": mapFile(ok), "001_b.sql": mapFile(ok)},
			file: "0001_a.sql", other: "001_b.sql", want: []string{"version 1", "rename one of them"}},
		{name: "duplicate across kinds", fsys: fstest.MapFS{"0002_a.sql": mapFile(ok), "2-b.sh": mapFile("true")},
			file: "0002_a.sql", other: "2-b.sh", want: []string{"version 2", "rename one of them"}},
		{name: "Go collides with a file", fsys: fstest.MapFS{"0003_a.sql": mapFile(ok)},
			gos:  []GoMigration{{Version: 3, Name: "gofix", Up: srcNoopGo}},
			file: "0003_a.sql", other: "go:3_gofix", want: []string{"version 3", "rename one of them"}},
		{name: "two Go migrations", gos: []GoMigration{{Version: 7, Name: "a", Up: srcNoopGo}, {Version: 7, Name: "b", Up: srcNoopGo}},
			file: "go:7_a", other: "go:7_b", want: []string{"version 7"}},
		{name: "Go without Up", gos: []GoMigration{{Version: 8, Name: "noup", Down: srcNoopGo}},
			file: "go:8_noup", want: []string{"no Up function", "set Up"}},
		{name: "Go version 0", gos: []GoMigration{{Version: 0, Name: "zero", Up: srcNoopGo}},
			file: "go:0_zero", want: []string{"version 0", "positive Version"}},
		{name: "Go without name", gos: []GoMigration{{Version: 9, Up: srcNoopGo}},
			file: "go:9_", want: []string{"no Name"}},
		{name: "no description", fsys: fstest.MapFS{"0001.sql": mapFile(ok)}, file: "0001.sql", want: []string{"rename"}},
		{name: "wrong extension", fsys: fstest.MapFS{"0002_x.txt": mapFile(ok)}, file: "0002_x.txt", want: []string{".txt"}},
		{name: "letters after digits", fsys: fstest.MapFS{"12abc.sql": mapFile(ok)}, file: "12abc.sql", want: []string{"rename"}},
		{name: "editor backup", fsys: fstest.MapFS{"0003_x.sql~": mapFile(ok)}, file: "0003_x.sql~", want: []string{"move it"}},
		{name: "version 0", fsys: fstest.MapFS{"0000_x.sql": mapFile(ok)}, file: "0000_x.sql", want: []string{"version 0"}},
		{name: "version overflow", fsys: fstest.MapFS{"99999999999999999999_x.sql": mapFile(ok)}, file: "99999999999999999999_x.sql", want: []string{"too large"}},
		{name: "not UTF-8", fsys: fstest.MapFS{"0004_latin1.sql": mapFile("SELECT 1;\nSELECT 'caf\xe9';\n")},
			file: "0004_latin1.sql", want: []string{"not valid UTF-8", "line 2", "save it as UTF-8"}},
		{name: "script not UTF-8", fsys: fstest.MapFS{"0004_x.py": mapFile("print('\xff')")},
			file: "0004_x.py", want: []string{"not valid UTF-8", "line 1"}},
		{name: "NUL byte", fsys: fstest.MapFS{"0005_bin.sql": mapFile("SELECT 1;\n\nSELECT '\x00';")},
			file: "0005_bin.sql", want: []string{"NUL byte", "line 3", "remove it"}},
		{name: "unterminated string", fsys: fstest.MapFS{"0006_x.sql": mapFile("SELECT 1;\nSELECT 'oops;\n")},
			file: "0006_x.sql", want: []string{"line 2", "unterminated string literal"}},
		{name: "bad sections", fsys: fstest.MapFS{"0007_x.sql": mapFile("-- migrate:down\nSELECT 1;\n-- migrate:up\nSELECT 2;")},
			file: "0007_x.sql", want: []string{"line 1", "before"}},
		{name: "bad directive", fsys: fstest.MapFS{"0008_x.sql": mapFile("-- migrate:up transaction:off\nSELECT 1;")},
			file: "0008_x.sql", want: []string{"line 1", "transaction:off"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := loadMigrations(tt.fsys, "migs", tt.gos)
			if err == nil {
				t.Fatalf("no error: %+v", got)
			}
			if got != nil {
				t.Fatalf("migrations returned with an error: %+v", got)
			}
			wantDirError(t, err, "migs", tt.file, tt.other, tt.want...)
		})
	}
}

func TestLoadMigrationsRealDir(t *testing.T) {
	dir := t.TempDir()
	write := func(name, data string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("0001_a.sql", "CREATE TABLE a(x);")
	write("0002_b.sh", "true")
	if err := os.Mkdir(filepath.Join(dir, "0003_subdir"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("0003_subdir", filepath.Join(dir, "0004_link.sql")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("0001_a.sql", filepath.Join(dir, "0005_alias.sql")); err != nil {
		t.Fatal(err)
	}
	fsys, err := OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	got, err := loadMigrations(fsys, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0].File != "0001_a.sql" || got[1].File != "0002_b.sh" || got[2].File != "0005_alias.sql" ||
		got[2].Checksum != got[0].Checksum {
		t.Fatalf("got %+v", got)
	}

	if err := os.Symlink("nowhere", filepath.Join(dir, "0006_dangling.sql")); err != nil {
		t.Fatal(err)
	}
	_, err = loadMigrations(fsys, dir, nil)
	wantDirError(t, err, dir, "0006_dangling.sql", "", "link")
	os.Remove(filepath.Join(dir, "0006_dangling.sql"))

	if err := syscall.Mkfifo(filepath.Join(dir, "0007_fifo.sql"), 0o644); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	_, err = loadMigrations(fsys, dir, nil)
	wantDirError(t, err, dir, "0007_fifo.sql", "", "not a regular file")
}

func TestOpenDir(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "0001_a.sql"), []byte("SELECT 1;"), 0o644); err != nil {
		t.Fatal(err)
	}
	fsys, err := OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := loadMigrations(fsys, dir, nil); err != nil || len(got) != 1 {
		t.Fatalf("loadMigrations through OpenDir: %v, %v", got, err)
	}

	missing := filepath.Join(dir, "nope")
	_, err = OpenDir(missing)
	wantDirError(t, err, missing, "", "", "does not exist", "--dir")

	afile := filepath.Join(dir, "0001_a.sql")
	_, err = OpenDir(afile)
	wantDirError(t, err, afile, "", "", "not a directory")

	_, err = OpenDir("")
	wantDirError(t, err, `""`, "", "", "--dir")

	empty := t.TempDir()
	fsys, err = OpenDir(empty)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := loadMigrations(fsys, empty, nil); err != nil || len(got) != 0 {
		t.Fatalf("empty dir: %v, %v", got, err)
	}
}

func TestChecksum(t *testing.T) {
	const emptySHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
	if got := Checksum(nil); got != emptySHA256 {
		t.Fatalf("Checksum(nil) = %s", got)
	}
	if got := Checksum([]byte("\xef\xbb\xbf")); got != emptySHA256 {
		t.Fatalf("Checksum(BOM) = %s", got)
	}
	lf := []byte("CREATE TABLE t(a);\nSELECT 1;\n")
	for _, v := range [][]byte{
		[]byte("CREATE TABLE t(a);\r\nSELECT 1;\r\n"),
		[]byte("\xef\xbb\xbfCREATE TABLE t(a);\nSELECT 1;\n"),
		[]byte("\xef\xbb\xbfCREATE TABLE t(a);\r\nSELECT 1;\r\n"),
	} {
		if Checksum(v) != Checksum(lf) {
			t.Errorf("Checksum(%q) differs from its LF form", v)
		}
	}
	for _, v := range [][]byte{
		[]byte("CREATE TABLE t(a);\rSELECT 1;\r"),              // lone CR is not a line ending
		[]byte("CREATE TABLE t(a);\nSELECT 1;\n\n"),            // content matters
		[]byte("x\xef\xbb\xbfCREATE TABLE t(a);\nSELECT 1;\n"), // only a leading BOM is stripped
	} {
		if Checksum(v) == Checksum(lf) {
			t.Errorf("Checksum(%q) equals the LF form's", v)
		}
	}
	if got := Checksum(lf); len(got) != 64 || strings.ToLower(got) != got {
		t.Errorf("Checksum is not lower-case hex SHA-256: %q", got)
	}
	in := []byte("a\r\nb")
	Checksum(in)
	if string(in) != "a\r\nb" {
		t.Errorf("Checksum modified its input: %q", in)
	}
	if goChecksum(12, "backfill") != Checksum([]byte("go:12:backfill")) {
		t.Errorf("goChecksum is not the checksum of go:<version>:<name>")
	}
}
