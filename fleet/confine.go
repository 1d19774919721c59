package fleet

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"path/filepath"
	"runtime"
	"strings"
	"unicode/utf8"

	"github.com/shoal-dev/shoal/engine"
)

// OutcomeRejected is the outcome of a job that was malformed or named a DB
// that does not resolve to a regular file beneath the worker's tenant root:
// nothing was created or changed anywhere, and it is never retried.
const OutcomeRejected = "rejected"

// ErrRejected is wrapped by every rejection (errors.Is).
var ErrRejected = errors.New("job rejected")

// Bounds of a job message. A job is a few hundred bytes; anything larger is
// not one of shoal's.
const (
	MaxJobBytes    = 16 << 10 // the whole message
	MaxTenantBytes = 4 << 10  // the tenant id
	MaxPathBytes   = 4 << 10  // the informational path
	MaxJobIDBytes  = 5 << 10  // run id + tenant + the DB's state
	MaxTarget      = 1<<53 - 1
)

// RejectedRunID is the pseudo run id under which results of jobs whose own
// run id is unusable are published: <results>._rejected. Real run ids never
// start with '_' (ValidRunID).
const RejectedRunID = "_rejected"

// RejectError says why a job was rejected.
type RejectError struct {
	Tenant string // as the job gave it (shortened)
	Root   string // the worker's tenant root, when the rejection is about it
	Reason string
	Err    error // the system's error, may be nil
}

func (e *RejectError) Error() string {
	var b strings.Builder
	b.WriteString("job rejected")
	if e.Tenant != "" {
		fmt.Fprintf(&b, ": tenant %q", e.Tenant)
	}
	fmt.Fprintf(&b, ": %s", e.Reason)
	if e.Err != nil {
		fmt.Fprintf(&b, ": %v", e.Err)
	}
	if e.Root != "" {
		fmt.Fprintf(&b, " (tenant root %s; nothing was opened, created or changed)", e.Root)
	} else {
		b.WriteString(" (nothing was opened, created or changed)")
	}
	return b.String()
}

func (e *RejectError) Unwrap() []error {
	if e.Err != nil {
		return []error{ErrRejected, e.Err}
	}
	return []error{ErrRejected}
}

// ResultOutcome is engine.Outcome plus the fleet's own: a rejection.
func ResultOutcome(err error) string {
	if errors.Is(err, ErrRejected) {
		return OutcomeRejected
	}
	return engine.Outcome(err)
}

// ValidRunID checks a run id: ValidName, and not starting with '_' (names
// starting with '_' are shoal's own, e.g. RejectedRunID).
func ValidRunID(s string) error {
	if err := ValidName("run id", s); err != nil {
		return err
	}
	if strings.HasPrefix(s, "_") {
		return fmt.Errorf("invalid run id %q: run ids starting with '_' are reserved", s)
	}
	return nil
}

// Shorten returns s cut to at most n bytes (on a rune boundary), with a note
// of how much was cut: for echoing untrusted input in errors and results.
func Shorten(s string, n int) string {
	if len(s) <= n {
		return strings.ToValidUTF8(s, "\uFFFD")
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return strings.ToValidUTF8(s[:cut], "\uFFFD") + fmt.Sprintf("…(%d more bytes)", len(s)-cut)
}

// ParseJob decodes and validates a job message: valid JSON of at most
// MaxJobBytes, a run id that is one subject token (ValidRunID), a tenant
// and path of at most 4 KiB each (valid UTF-8, no NUL, at least one of
// them), a tenant that is a clean relative path (CheckTenant), target >= 0
// and a known priority. Unknown keys are allowed (newer producers). On
// error the returned job holds what could be read, shortened, for the
// rejected result; the error wraps ErrRejected.
func ParseJob(data []byte) (Job, error) {
	var job Job
	rej := func(format string, a ...any) (Job, error) {
		job.RunID = Shorten(job.RunID, 160)
		job.JobID = Shorten(job.JobID, 512)
		job.Tenant = Shorten(job.Tenant, 512)
		job.Path = Shorten(job.Path, 512)
		return job, &RejectError{Tenant: job.Tenant, Reason: fmt.Sprintf(format, a...)}
	}
	if len(data) > MaxJobBytes {
		// Read what we can for the result, but judge by the size.
		_ = json.Unmarshal(data, &job)
		return rej("malformed job: message of %d bytes, at most %d", len(data), MaxJobBytes)
	}
	if err := json.Unmarshal(data, &job); err != nil {
		job = Job{}
		return rej("malformed job: not a JSON job object: %s", Shorten(err.Error(), 200))
	}
	if err := ValidRunID(job.RunID); err != nil {
		return rej("malformed job: %s", Shorten(err.Error(), 300))
	}
	if len(job.JobID) > MaxJobIDBytes || !utf8.ValidString(job.JobID) {
		return rej("malformed job: job_id of %d bytes or not valid UTF-8, at most %d", len(job.JobID), MaxJobIDBytes)
	}
	if len(job.Tenant) > MaxTenantBytes {
		return rej("malformed job: tenant of %d bytes, at most %d", len(job.Tenant), MaxTenantBytes)
	}
	if len(job.Path) > MaxPathBytes {
		return rej("malformed job: path of %d bytes, at most %d", len(job.Path), MaxPathBytes)
	}
	for _, f := range []struct{ name, v string }{{"tenant", job.Tenant}, {"path", job.Path}} {
		if !utf8.ValidString(f.v) || strings.ContainsRune(f.v, 0) {
			return rej("malformed job: %s is not valid UTF-8 or contains NUL", f.name)
		}
	}
	if job.Tenant == "" && job.Path == "" {
		return rej("malformed job: no tenant")
	}
	if job.MaxFailures < 0 || job.MaxFailures > MaxTarget {
		return rej("malformed job: max_failures %d out of range (0 = no halt)", job.MaxFailures)
	}
	if job.Target < 0 || job.Target > MaxTarget {
		return rej("malformed job: target %d out of range (0 = the worker's head)", job.Target)
	}
	switch job.Priority {
	case "", PriorityNormal, PriorityHigh:
	default:
		return rej("malformed job: priority %q (normal or high)", Shorten(job.Priority, 32))
	}
	if job.Tenant != "" {
		if err := CheckTenant(job.Tenant); err != nil {
			return rej("%v", err)
		}
	}
	return job, nil
}

// CheckTenant checks a tenant id lexically: a relative path with '/'
// separators, no empty, '.' or '..' segment (so it names something beneath
// the root), and on Windows no '\' or ':'.
func CheckTenant(tenant string) error {
	if tenant == "" {
		return errors.New("empty tenant")
	}
	if strings.HasPrefix(tenant, "/") || filepath.IsAbs(tenant) || path.IsAbs(tenant) {
		return fmt.Errorf("tenant must be relative to the tenant root, not an absolute path")
	}
	if runtime.GOOS == "windows" && strings.ContainsAny(tenant, `\:`) {
		return fmt.Errorf(`tenant must use '/' and contain no '\' or ':'`)
	}
	for _, seg := range strings.Split(tenant, "/") {
		switch seg {
		case "", ".", "..":
			return fmt.Errorf("tenant has an empty, '.' or '..' segment: it must name a file beneath the tenant root")
		}
	}
	return nil
}

// TenantFromPath derives the tenant of a job that has only a path (a job
// published by hand): the path relative to root, lexically; a path not
// beneath root is rejected.
func TenantFromPath(root, p string) (string, error) {
	if !filepath.IsAbs(p) {
		return "", &RejectError{Tenant: Shorten(p, 512), Root: root, Reason: "a job without a tenant must give an absolute path beneath the tenant root"}
	}
	rel, err := filepath.Rel(root, filepath.Clean(p))
	if err != nil || rel == "." || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return "", &RejectError{Tenant: Shorten(p, 512), Root: root, Reason: "path is not beneath the tenant root"}
	}
	t := filepath.ToSlash(rel)
	if err := CheckTenant(t); err != nil {
		return "", &RejectError{Tenant: Shorten(p, 512), Root: root, Reason: err.Error()}
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
// created. Errors: a RejectError (ErrRejected) for a tenant that is not a
// clean relative path, passes through a symlink or is not a regular file;
// an engine.DBError with engine.ErrNotFound when the file or a directory on
// the way does not exist (the tenant was removed).
func ResolveTenant(root, tenant string) (Resolved, error) {
	short := Shorten(tenant, 512)
	if err := CheckTenant(tenant); err != nil {
		return Resolved{}, &RejectError{Tenant: short, Root: root, Reason: err.Error()}
	}
	full := filepath.Join(root, filepath.FromSlash(tenant))
	id, err := resolveBeneath(root, tenant)
	if err != nil {
		var nf *notFound
		if errors.As(err, &nf) {
			return Resolved{}, &engine.DBError{Path: full, Kind: engine.ErrNotFound, Err: nf.err,
				Hint: "the tenant was removed, or its name is wrong; nothing was created"}
		}
		var bad *badEntry
		if errors.As(err, &bad) {
			return Resolved{}, &RejectError{Tenant: short, Root: root, Reason: bad.reason, Err: bad.err}
		}
		return Resolved{}, &RejectError{Tenant: short, Root: root, Reason: "cannot resolve it beneath the tenant root", Err: err}
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

// MaxResultErrorBytes bounds a result's error text (a script's output can
// be long): the result stays well under NATS's message size limit.
const MaxResultErrorBytes = 16 << 10

// BoundResult cuts a result's error, tenant, path and run id to sizes that
// always publish: error to maxErr bytes (keeping its start and its end),
// the others as ParseJob allows.
func BoundResult(r Result, maxErr int) Result {
	r.RunID = Shorten(r.RunID, 160)
	r.JobID = Shorten(r.JobID, MaxJobIDBytes)
	r.Tenant = Shorten(r.Tenant, MaxTenantBytes)
	r.Path = Shorten(r.Path, MaxPathBytes)
	if r.Error != nil && len(*r.Error) > maxErr {
		e := *r.Error
		head := maxErr * 3 / 4
		for head > 0 && !utf8.RuneStart(e[head]) {
			head--
		}
		tail := len(e) - (maxErr - head)
		for tail < len(e) && !utf8.RuneStart(e[tail]) {
			tail++
		}
		cut := strings.ToValidUTF8(e[:head], "\uFFFD") + fmt.Sprintf(" …(%d bytes cut)… ", tail-head) + strings.ToValidUTF8(e[tail:], "\uFFFD")
		r.Error = &cut
	}
	return r
}
