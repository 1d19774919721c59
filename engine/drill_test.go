package engine

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// Failure drills: each leaves the DB's content identical to before the
// failed step.

// A script killed with kill -9 in the middle of its writes.
func TestDrillScriptKilledMidWrite(t *testing.T) {
	p := tempDB(t)
	files := map[string]string{"0001_a.sql": "CREATE TABLE a (x); INSERT INTO a VALUES (1);"}
	if _, err := newEngine(t, files).Migrate(ctx(t), p, MigrateOptions{}); err != nil {
		t.Fatal(err)
	}
	before := dump(t, p)
	files["0002_s.sh"] = `python3 - "$1" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
for i in range(100):
    db.execute("INSERT INTO a VALUES (?)", (i + 100,))
    db.commit()
PY
kill -9 $$
`
	_, err := newEngine(t, files).Migrate(ctx(t), p, MigrateOptions{})
	if !errors.Is(err, ErrMigration) || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("want the killed script's failure, got %v", err)
	}
	if after := dump(t, p); after != before {
		t.Fatalf("killed script's writes survived:\n%s", after)
	}
}

// A full disk mid-migration (PRAGMA max_page_count caps the file).
func TestDrillDiskFull(t *testing.T) {
	p := tempDB(t)
	files := map[string]string{"0001_a.sql": "CREATE TABLE a (x); INSERT INTO a VALUES (1);"}
	if _, err := newEngine(t, files).Migrate(ctx(t), p, MigrateOptions{}); err != nil {
		t.Fatal(err)
	}
	before := dump(t, p)
	raw := fileBytes(t, p)
	files["0002_fill.sql"] = `CREATE TABLE big (s TEXT);
PRAGMA max_page_count = 8;
WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 10000)
INSERT INTO big SELECT hex(randomblob(100)) FROM c;`
	_, err := newEngine(t, files).Migrate(ctx(t), p, MigrateOptions{})
	var me *Error
	if !errors.As(err, &me) || me.Statement != 3 || !strings.Contains(err.Error(), "full") {
		t.Fatalf("want a disk-full failure at statement 3, got %v", err)
	}
	if after := dump(t, p); after != before {
		t.Fatalf("disk-full run changed the DB:\n%s", after)
	}
	if !bytes.Equal(raw, fileBytes(t, p)) {
		t.Fatal("disk-full run changed the file's bytes")
	}
}

// Read-only DB file and read-only directory. Root ignores permission bits,
// so the migrator runs as an unprivileged user (uid 65534) in a child
// process; as a non-root user the test runs the same way without switching.
func TestDrillReadOnly(t *testing.T) {
	for _, tc := range []struct {
		name          string
		fileMode      os.FileMode
		dirMode       os.FileMode
		wantSubstring string
	}{
		{"read-only file", 0o444, 0o777, "the file is read-only"},
		{"read-only directory", 0o666, 0o555, "database is not writable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// t.TempDir's parent is 0700: the unprivileged user could not enter it.
			base, err := os.MkdirTemp("", "shoal-ro-")
			if err != nil {
				t.Fatal(err)
			}
			os.Chmod(base, 0o755)
			defer os.RemoveAll(base)
			d := filepath.Join(base, "tenant")
			os.Mkdir(d, 0o777)
			p := filepath.Join(d, "t.db")
			files := raceMigrations(3)
			e := newEngine(t, map[string]string{"0001_t.sql": files["0001_t.sql"]})
			if _, err := e.Migrate(ctx(t), p, MigrateOptions{}); err != nil {
				t.Fatal(err)
			}
			os.Remove(lockPath(p))
			before := fileBytes(t, p)
			os.Chmod(p, tc.fileMode)
			os.Chmod(d, tc.dirMode)
			defer os.Chmod(d, 0o777)
			out, err := unprivileged(t, base, "race3", p)
			if err == nil {
				t.Fatalf("migration of a read-only DB succeeded:\n%s", out)
			}
			if !strings.Contains(out, tc.wantSubstring) {
				t.Fatalf("error does not explain the %s (%v): %s", tc.name, err, out)
			}
			t.Logf("%s", out)
			if !bytes.Equal(before, fileBytes(t, p)) {
				t.Fatal("read-only DB changed")
			}
		})
	}
}

// unprivileged runs the migrate helper as uid/gid 65534 when we are root,
// from a copy of the test binary the user can execute.
func unprivileged(t *testing.T, base, set, db string) (string, error) {
	t.Helper()
	bin := os.Args[0]
	cmd := exec.Command(bin, "-test.run=^$")
	if os.Getuid() == 0 {
		exe := filepath.Join(base, "engine.test")
		data, err := os.ReadFile(bin)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(exe, data, 0o755); err != nil {
			t.Fatal(err)
		}
		cmd = exec.Command(exe, "-test.run=^$")
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	}
	cmd.Env = append(os.Environ(), "SHOAL_TEST_HELPER=migrate", "SHOAL_TEST_SET="+set, "SHOAL_TEST_DB="+db, "HOME=/tmp", "TMPDIR=/tmp")
	out, err := cmd.CombinedOutput()
	return string(out), err
}
