package tenants

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"

	"github.com/shoal-dev/shoal/engine"
	"github.com/shoal-dev/shoal/fleet"
)

// TenantFromPath derives the tenant of a job that has only a path (a job
// published by hand): the path relative to root, lexically; a path not
// beneath root is rejected.
func TenantFromPath(root, p string) (string, error) {
	if !filepath.IsAbs(p) {
		return "", &fleet.RejectError{Tenant: fleet.Shorten(p, 512), Root: root, Reason: "a job without a tenant must give an absolute path beneath the tenant root"}
	}
	rel, err := filepath.Rel(root, filepath.Clean(p))
	if err != nil || rel == "." || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return "", &fleet.RejectError{Tenant: fleet.Shorten(p, 512), Root: root, Reason: "path is not beneath the tenant root"}
	}
	t := filepath.ToSlash(rel)
	if err := fleet.CheckTenant(t); err != nil {
		return "", &fleet.RejectError{Tenant: fleet.Shorten(p, 512), Root: root, Reason: err.Error()}
	}
	return t, nil
}

// Resolved is a tenant DB resolved beneath a root: Path is root joined with
// the tenant; the file's identity is kept to check, after a run, that the
// path still leads to the same file by the same way (Same).
type Resolved struct {
	Path string
	id   fileID
}

// Same reports whether o is the same file as r.
func (r Resolved) Same(o Resolved) bool { return r.Path == o.Path && sameID(r.id, o.id) }

// ResolveTenant resolves tenant beneath root without following any symlink
// below root (root itself may be one: it is the operator's), and requires a
// regular file. On Linux this is one openat2(RESOLVE_BENEATH |
// RESOLVE_NO_SYMLINKS) call; elsewhere (or where openat2 is not allowed) a
// walk from root, one component at a time with O_NOFOLLOW. Nothing is
// created. Errors: a fleet.RejectError (ErrRejected) for a tenant that is not a
// clean relative path, passes through a symlink or is not a regular file;
// an *engine.Error with engine.ErrNotFound when the file or a directory on
// the way does not exist (the tenant was removed).
func ResolveTenant(root, tenant string) (Resolved, error) {
	short := fleet.Shorten(tenant, 512)
	if err := fleet.CheckTenant(tenant); err != nil {
		return Resolved{}, &fleet.RejectError{Tenant: short, Root: root, Reason: err.Error()}
	}
	full := filepath.Join(root, filepath.FromSlash(tenant))
	id, err := resolveBeneath(root, tenant)
	if err != nil {
		var nf *notFound
		if errors.As(err, &nf) {
			return Resolved{}, &engine.Error{Path: full, Kind: engine.ErrNotFound, Err: nf.err,
				Hint: "the tenant was removed, or its name is wrong; nothing was created"}
		}
		var bad *badEntry
		if errors.As(err, &bad) {
			return Resolved{}, &fleet.RejectError{Tenant: short, Root: root, Reason: bad.reason, Err: bad.err}
		}
		return Resolved{}, &fleet.RejectError{Tenant: short, Root: root, Reason: "cannot resolve it beneath the tenant root", Err: err}
	}
	return Resolved{Path: full, id: id}, nil
}

// notFound: a component does not exist.
type notFound struct{ err error }

func (e *notFound) Error() string { return e.err.Error() }

// badEntry: a symlink, an escape or something that is not a regular file.
type badEntry struct {
	reason string
	err    error
}

func (e *badEntry) Error() string { return e.reason }

func errSymlink(err error) error {
	return &badEntry{reason: "its path goes through a symlink (symlinks beneath the tenant root are never followed)", err: err}
}

func errNotRegular(mode fs.FileMode) error {
	return &badEntry{reason: fmt.Sprintf("not a regular file (%s)", describeMode(mode))}
}

func describeMode(m fs.FileMode) string {
	switch {
	case m&fs.ModeSymlink != 0:
		return "a symlink"
	case m.IsDir():
		return "a directory"
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeDevice != 0:
		return "a device"
	}
	return "type " + m.Type().String()
}
