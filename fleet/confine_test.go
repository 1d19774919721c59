package fleet

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/engine"
)

func TestParseJob(t *testing.T) {
	good := `{"run_id":"r-1","tenant":"acme/app.db","path":"/srv/acme/app.db","target":3,"priority":"high","future_key":1}`
	job, err := ParseJob([]byte(good))
	if err != nil || job.RunID != "r-1" || job.Tenant != "acme/app.db" || job.Target != 3 {
		t.Fatalf("good job: %+v %v", job, err)
	}
	if _, err := ParseJob([]byte(`{"run_id":"r","path":"/srv/acme/app.db"}`)); err != nil {
		t.Fatalf("a path-only job is parsed (the worker checks the path against its root): %v", err)
	}
	bad := map[string]string{
		"space in run id":     `{"run_id":"a b","tenant":"x/app.db"}`,
		"wildcard run id":     `{"run_id":"a.*","tenant":"x/app.db"}`,
		"dotted run id":       `{"run_id":"legit.manifest","tenant":"x/app.db"}`,
		"gt run id":           `{"run_id":">","tenant":"x/app.db"}`,
		"reserved run id":     `{"run_id":"_rejected","tenant":"x/app.db"}`,
		"empty run id":        `{"tenant":"x/app.db"}`,
		"long run id":         `{"run_id":"` + strings.Repeat("r", 129) + `","tenant":"x/app.db"}`,
		"huge tenant":         `{"run_id":"r","tenant":"` + strings.Repeat("x", 900<<10) + `"}`,
		"long tenant":         `{"run_id":"r","tenant":"` + strings.Repeat("x", MaxTenantBytes+1) + `"}`,
		"long path":           `{"run_id":"r","tenant":"x","path":"` + strings.Repeat("p", MaxPathBytes+1) + `"}`,
		"negative target":     `{"run_id":"r","tenant":"x/app.db","target":-1}`,
		"no tenant":           `{"run_id":"r"}`,
		"traversal":           `{"run_id":"r","tenant":"../x/app.db"}`,
		"inner traversal":     `{"run_id":"r","tenant":"a/../../x/app.db"}`,
		"absolute":            `{"run_id":"r","tenant":"/etc/app.db"}`,
		"empty segment":       `{"run_id":"r","tenant":"a//app.db"}`,
		"dot segment":         `{"run_id":"r","tenant":"./app.db"}`,
		"NUL":                 `{"run_id":"r","tenant":"a\u0000b"}`,
		"priority":            `{"run_id":"r","tenant":"a","priority":"urgent"}`,
		"garbage":             `not json`,
		"array":               `[1,2]`,
		"wrong type":          `{"run_id":"r","tenant":"a","target":"3"}`,
		"trailing garbage":    `{"run_id":"r","tenant":"a"} x`,
		"target out of range": `{"run_id":"r","tenant":"a","target":9007199254740993}`,
	}
	for name, data := range bad {
		job, err := ParseJob([]byte(data))
		if !errors.Is(err, ErrRejected) {
			t.Errorf("%s: %v, want a rejection", name, err)
			continue
		}
		if ResultOutcome(err) != OutcomeRejected {
			t.Errorf("%s: outcome %s", name, ResultOutcome(err))
		}
		if len(job.RunID) > 200 || len(job.Tenant) > 600 || len(job.Path) > 600 || len(err.Error()) > 2000 {
			t.Errorf("%s: echoes unbounded input (%d/%d/%d/%d bytes)", name, len(job.RunID), len(job.Tenant), len(job.Path), len(err.Error()))
		}
	}
}

func TestResolveTenant(t *testing.T) {
	root, outside := t.TempDir(), t.TempDir()
	touch(t, root, "ok/app.db", "deep/a/b/app.db")
	touch(t, outside, "victim.db", "dir/app.db")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Symlink(filepath.Join(outside, "victim.db"), filepath.Join(root, "ok", "link.db")))
	must(os.Symlink(filepath.Join(outside, "dir"), filepath.Join(root, "linkdir")))
	must(os.Symlink(filepath.Join(root, "ok"), filepath.Join(root, "inner"))) // even a link inside the root
	must(os.Symlink("nowhere", filepath.Join(root, "ok", "dangling.db")))
	must(os.MkdirAll(filepath.Join(root, "adir", "app.db"), 0o755))
	if runtime.GOOS != "windows" {
		must(syscall.Mkfifo(filepath.Join(root, "ok", "fifo.db"), 0o644))
	}
	for _, tn := range []string{"ok/app.db", "deep/a/b/app.db"} {
		r, err := ResolveTenant(root, tn)
		if err != nil || r.Path != filepath.Join(root, filepath.FromSlash(tn)) {
			t.Fatalf("%s: %+v %v", tn, r, err)
		}
		again, _ := ResolveTenant(root, tn)
		if !r.Same(again) {
			t.Fatalf("%s: not the same file twice", tn)
		}
	}
	rejected := []string{"ok/link.db", "linkdir/app.db", "inner/app.db", "ok/dangling.db", "adir/app.db",
		"ok/app.db/x", "../" + filepath.Base(outside) + "/victim.db", filepath.Join(outside, "victim.db"), "ok/fifo.db"}
	for _, tn := range rejected {
		if runtime.GOOS == "windows" && strings.Contains(tn, "fifo") {
			continue
		}
		_, err := ResolveTenant(root, tn)
		if !errors.Is(err, ErrRejected) {
			t.Errorf("%s: %v, want a rejection", tn, err)
		}
	}
	for _, tn := range []string{"gone/app.db", "ok/gone.db"} {
		if _, err := ResolveTenant(root, tn); !errors.Is(err, engine.ErrNotFound) || errors.Is(err, ErrRejected) {
			t.Errorf("%s: %v, want not found", tn, err)
		}
	}
	if _, err := os.Stat(filepath.Join(root, "gone")); !os.IsNotExist(err) {
		t.Fatal("resolving created something")
	}
	// The same answers from the portable walk (used where openat2 is not
	// available).
	if runtime.GOOS == "linux" {
		for _, tn := range rejected[:6] {
			if _, err := resolveWalk(root, tn); err == nil {
				t.Errorf("resolveWalk %s: accepted", tn)
			}
		}
		if _, err := resolveWalk(root, "ok/app.db"); err != nil {
			t.Errorf("resolveWalk ok/app.db: %v", err)
		}
		var nf *notFound
		if _, err := resolveWalk(root, "gone/app.db"); !errors.As(err, &nf) {
			t.Errorf("resolveWalk gone/app.db: %v", err)
		}
	}
}

func TestTenantFromPath(t *testing.T) {
	root := filepath.FromSlash("/srv/tenants")
	if tn, err := TenantFromPath(root, filepath.FromSlash("/srv/tenants/acme/app.db")); err != nil || tn != "acme/app.db" {
		t.Fatalf("%q %v", tn, err)
	}
	for _, p := range []string{"/srv/other/app.db", "/srv/tenants/../x.db", "/srv/tenants", "acme/app.db"} {
		if _, err := TenantFromPath(root, filepath.FromSlash(p)); !errors.Is(err, ErrRejected) {
			t.Errorf("%s: %v", p, err)
		}
	}
}

func TestBoundResult(t *testing.T) {
	e := strings.Repeat("a", 100) + strings.Repeat("é", 50000) + "the end"
	r := BoundResult(Result{Tenant: strings.Repeat("t", 10000), Error: &e, At: time.Now()}, 1000)
	if len(*r.Error) > 1100 || !strings.HasSuffix(*r.Error, "the end") || !strings.HasPrefix(*r.Error, "aaa") || len(r.Tenant) > MaxTenantBytes+40 {
		t.Fatalf("error %d bytes, tenant %d bytes", len(*r.Error), len(r.Tenant))
	}
}
