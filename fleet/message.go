// Package fleet is the contract between the producer, the workers and the
// fleet commands, and the JetStream topology they meet on: the messages
// (jobs, results, run manifests, reports) with their validation and outcome
// vocabulary, the streams, subjects and consumers and how to connect to and
// provision them, and the following of a run's results (Tracker, Follow).
// Storage (the walk of a root, tenant confinement, local status) is package
// tenants.
package fleet

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/shoal-dev/shoal/engine"
)

// Priorities of a job.
const (
	PriorityNormal = "normal"
	PriorityHigh   = "high"
)

// Outcomes lists every result outcome in the order reports show them.
var Outcomes = []string{
	engine.OutcomeMigrated, engine.OutcomeCurrent, engine.OutcomeFailed,
	engine.OutcomeUnmanaged, engine.OutcomeAhead, engine.OutcomeChanged,
	engine.OutcomeOutOfOrder, engine.OutcomeCorrupt, engine.OutcomeDrifted, OutcomeRejected, OutcomeSkipped,
	engine.OutcomeAdopted,
}

// AtHead reports whether an outcome leaves the DB at the run's target.
func AtHead(outcome string) bool {
	return outcome == engine.OutcomeMigrated || outcome == engine.OutcomeCurrent || outcome == engine.OutcomeAdopted
}

// Job asks a worker to migrate one tenant DB. Published on
// shoal.jobs.<node> (bulk) or shoal.jobs.<node>.high (enqueue).
type Job struct {
	RunID string `json:"run_id"`
	// JobID names this job: the producer derives it from the run id, the
	// tenant and the state of the DB file it saw, and uses it as the
	// Nats-Msg-Id, so re-publishing an unchanged DB in the same run adds
	// nothing. The worker copies it into the result, so a producer waits for
	// exactly the jobs of its pass.
	JobID  string `json:"job_id"`
	Tenant string `json:"tenant"`
	Path   string `json:"path"`
	// Target is the version to migrate to: the producer's head (0: the
	// worker's head).
	Target      int64     `json:"target"`
	RequestedAt time.Time `json:"requested_at"`
	Priority    string    `json:"priority"`
	// MaxFailures > 0: the run halts once that many of its tenants failed
	// (the producer's --max-failures); a worker then reports this job
	// `skipped` instead of migrating it (see halt.go). 0: no halt.
	MaxFailures int64 `json:"max_failures"`
	// Adopt: a DB shoal does not manage yet whose tables another tool's
	// history describes is taken over on first contact, then migrated
	// (`produce --adopt`, `run --adopt`; docs/switching.md).
	Adopt bool `json:"adopt"`
}

// Result is what a worker did with one job, published on
// shoal.results.<run_id>. Every key is always present: From/To are null
// when the DB's version could not be read (refusals), Backup and Error null
// when there is none, Applied an array, never null.
type Result struct {
	RunID   string           `json:"run_id"`
	JobID   string           `json:"job_id"` // the job's job_id ("" for a job without one)
	Tenant  string           `json:"tenant"`
	Path    string           `json:"path"`
	Outcome string           `json:"outcome"`
	From    *int64           `json:"from"`
	To      *int64           `json:"to"`
	Applied []engine.Applied `json:"applied"`
	Backup  *string          `json:"backup"`
	Error   *string          `json:"error"`
	// Retryable says whether the failure may heal by itself (Retryable):
	// such a job was retried up to max deliver; false for every other
	// outcome, success included.
	Retryable  bool      `json:"retryable"`
	Attempt    int       `json:"attempt"`
	Worker     string    `json:"worker"`
	DurationMs int64     `json:"duration_ms"`
	At         time.Time `json:"at"`
	// AdoptedFrom names the other tool's history the worker took over
	// (outcome `adopted`), null otherwise.
	AdoptedFrom *string `json:"adopted_from"`
}

// MarshalJSON keeps lists as arrays even when the struct holds nil.
func (r Result) MarshalJSON() ([]byte, error) {
	return json.Marshal(r.plain())
}

// plainResult is Result without its MarshalJSON: encoding it directly
// spares encoding/json the validation and compaction of a marshaller's
// output (most of the cost of writing 100,000 of them).
type plainResult Result

func (r Result) plain() plainResult {
	p := plainResult(r)
	if p.Applied == nil {
		p.Applied = []engine.Applied{}
	}
	return p
}

// Int64 and String return pointers for the nullable Result fields.
func Int64(v int64) *int64 { return &v }

// String returns a pointer to s, or nil for "".
func String(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// Manifest describes a run: published by the producer on
// shoal.results.<run_id>.manifest when the walk starts (Complete false) and
// when it ends (Complete true, Total = jobs in the run), so readers of the
// results know when every DB has reported.
type Manifest struct {
	RunID      string     `json:"run_id"`
	Root       string     `json:"root"`
	Pattern    string     `json:"pattern"`
	Node       string     `json:"node"`
	OnlyBehind bool       `json:"only_behind"`
	Head       int64      `json:"head"`
	Complete   bool       `json:"complete"`
	Total      int        `json:"total"`
	Skipped    int        `json:"skipped"`
	StartedAt  time.Time  `json:"started_at"`
	FinishedAt *time.Time `json:"finished_at"`
}

// Summary counts a report's results. It marshals as
// {"total", "migrated", ..., "corrupt", "pending", "duration_ms"}: every
// outcome key present, pending = tenants of the run with no result yet.
type Summary struct {
	Total      int
	Counts     map[string]int
	Pending    int
	DurationMs int64
}

// MarshalJSON writes the keys in a fixed order.
func (s Summary) MarshalJSON() ([]byte, error) {
	var b strings.Builder
	fmt.Fprintf(&b, `{"total":%d`, s.Total)
	for _, o := range Outcomes {
		fmt.Fprintf(&b, `,%q:%d`, o, s.Counts[o])
	}
	fmt.Fprintf(&b, `,"pending":%d,"duration_ms":%d}`, s.Pending, s.DurationMs)
	return []byte(b.String()), nil
}

// UnmarshalJSON reads what MarshalJSON writes.
func (s *Summary) UnmarshalJSON(data []byte) error {
	var m map[string]int64
	if err := json.Unmarshal(data, &m); err != nil {
		return err
	}
	s.Counts = map[string]int{}
	for k, v := range m {
		switch k {
		case "total":
			s.Total = int(v)
		case "pending":
			s.Pending = int(v)
		case "duration_ms":
			s.DurationMs = v
		default:
			s.Counts[k] = int(v)
		}
	}
	return nil
}

// Report is the --report file and `results --json`: one entry per DB, its
// final result. A report from Tracker.StreamReport holds no Databases: its
// entries are read from the tracker one at a time (Each, WriteJSON), and
// only those not at head are kept (Failed).
type Report struct {
	RunID     string   `json:"run_id"`
	Summary   Summary  `json:"summary"`
	Databases []Result `json:"databases"`

	src    *Tracker // streams the entries in order, when set
	order  []uint32 // src's entries, by tenant
	failed []Result
}

// MarshalJSON keeps Databases an array.
func (r Report) MarshalJSON() ([]byte, error) {
	if r.src != nil {
		var b bytes.Buffer
		if err := r.WriteJSON(&b); err != nil {
			return nil, err
		}
		return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
	}
	type plain struct {
		RunID     string   `json:"run_id"`
		Summary   Summary  `json:"summary"`
		Databases []Result `json:"databases"`
	}
	p := plain{RunID: r.RunID, Summary: r.Summary, Databases: r.Databases}
	if p.Databases == nil {
		p.Databases = []Result{}
	}
	return json.Marshal(p)
}

// Len is the number of database entries.
func (r *Report) Len() int {
	if r.src != nil {
		return len(r.order)
	}
	return len(r.Databases)
}

// Each calls fn with every database entry in order, stopping at the first
// error.
func (r *Report) Each(fn func(Result) error) error {
	if r.src == nil {
		for _, d := range r.Databases {
			if err := fn(d); err != nil {
				return err
			}
		}
		return nil
	}
	for _, i := range r.order {
		d, err := r.src.entryOf(i)
		if err != nil {
			return err
		}
		if err := fn(d); err != nil {
			return err
		}
	}
	return nil
}

// OK reports whether every DB of the run reported and ended at head.
func (r *Report) OK() bool {
	return r.Summary.Pending <= 0 && len(r.Failed()) == 0
}

// Failed lists the results that did not end at head.
func (r *Report) Failed() []Result {
	if r.src != nil {
		return r.failed
	}
	var out []Result
	for _, d := range r.Databases {
		if !AtHead(d.Outcome) {
			out = append(out, d)
		}
	}
	return out
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// ValidName checks a run id, node name or NATS name prefix: one subject
// token, usable in consumer names.
func ValidName(kind, s string) error {
	if !nameRE.MatchString(s) || len(s) > 128 {
		return fmt.Errorf("invalid %s %q: use letters, digits, '-' and '_' (at most 128)", kind, s)
	}
	return nil
}

// NewRunID returns a run id from the time: run-20260130T101500Z-1a2b.
func NewRunID(now time.Time) string {
	return fmt.Sprintf("run-%s-%04x", now.UTC().Format("20060102T150405Z"), now.Nanosecond()&0xffff)
}

// NewResult is the result of one engine run on job's DB: the outcome from
// the engine's result or error, every key filled.
func NewResult(job Job, res *engine.Result, err error, attempt int, worker string, took time.Duration) Result {
	r := Result{RunID: job.RunID, JobID: job.JobID, Tenant: job.Tenant, Path: job.Path, Attempt: attempt, Worker: worker,
		Applied: []engine.Applied{}, At: time.Now().UTC(), DurationMs: took.Milliseconds()}
	if res != nil {
		r.From, r.To = Int64(res.From), Int64(res.To)
		r.Applied = append(r.Applied, res.Applied...)
		r.Backup = String(res.Backup)
	}
	if err != nil {
		r.Outcome = ResultOutcome(err)
		r.Error = String(err.Error())
		r.Retryable = Retryable(err)
	} else {
		r.Outcome = res.Outcome()
		if res.Adopted != nil {
			r.Outcome, r.AdoptedFrom = engine.OutcomeAdopted, String(res.Adopted.Source)
		}
	}
	return r
}
