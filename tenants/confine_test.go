package tenants

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"

	"github.com/shoal-dev/shoal/engine"
	"github.com/shoal-dev/shoal/fleet"
)

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
		if !errors.Is(err, fleet.ErrRejected) {
			t.Errorf("%s: %v, want a rejection", tn, err)
		}
	}
	for _, tn := range []string{"gone/app.db", "ok/gone.db"} {
		if _, err := ResolveTenant(root, tn); !errors.Is(err, engine.ErrNotFound) || errors.Is(err, fleet.ErrRejected) {
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
		if _, err := TenantFromPath(root, filepath.FromSlash(p)); !errors.Is(err, fleet.ErrRejected) {
			t.Errorf("%s: %v", p, err)
		}
	}
}
