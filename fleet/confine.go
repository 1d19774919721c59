package fleet

import (
	"encoding/json"
	"errors"
	"fmt"
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
