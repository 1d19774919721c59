package fleet

import (
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/engine"
)

func keys(t *testing.T, data []byte) []string {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func TestResultJSONEveryKey(t *testing.T) {
	data, err := json.Marshal(Result{RunID: "r", Tenant: "a/app.db", Outcome: "unmanaged"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"adopted_from", "applied", "at", "attempt", "backup", "duration_ms", "error", "from", "job_id", "outcome", "path", "retryable", "run_id", "tenant", "to", "worker"}
	if got := keys(t, data); !reflect.DeepEqual(got, want) {
		t.Fatalf("keys %v, want %v", got, want)
	}
	var m map[string]any
	json.Unmarshal(data, &m)
	if _, ok := m["applied"].([]any); !ok {
		t.Fatalf("applied is %#v, want []", m["applied"])
	}
	for _, k := range []string{"from", "to", "backup", "error", "adopted_from"} {
		if m[k] != nil {
			t.Fatalf("%s = %#v, want null", k, m[k])
		}
	}
	// and through a pointer
	r := &Result{}
	data, _ = json.Marshal(r)
	if !json.Valid(data) || len(keys(t, data)) != len(want) {
		t.Fatal(string(data))
	}
}

func TestJobAndManifestJSON(t *testing.T) {
	data, _ := json.Marshal(Job{})
	want := []string{"adopt", "job_id", "max_failures", "path", "priority", "requested_at", "run_id", "target", "tenant"}
	if got := keys(t, data); !reflect.DeepEqual(got, want) {
		t.Fatalf("job keys %v, want %v", got, want)
	}
}

func TestReportJSON(t *testing.T) {
	tr := NewTracker("r1", time.Now())
	rep := tr.Report(time.Now())
	data, _ := json.Marshal(rep)
	if got := keys(t, data); !reflect.DeepEqual(got, []string{"databases", "run_id", "summary"}) {
		t.Fatal(got)
	}
	var m map[string]map[string]any
	json.Unmarshal(data, &m)
	var raw map[string]json.RawMessage
	json.Unmarshal(data, &raw)
	if string(raw["databases"]) != "[]" {
		t.Fatalf("databases = %s, want []", raw["databases"])
	}
	sum := m["summary"]
	for _, k := range append([]string{"total", "pending", "duration_ms"}, Outcomes...) {
		if _, ok := sum[k]; !ok {
			t.Fatalf("summary lacks %q: %s", k, data)
		}
	}
	var back Report
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
}

func TestTrackerLaterResultReplacesEarlier(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tr := NewTracker("r", t0)
	tr.SetTotal(2)
	tr.Add(Result{Tenant: "a", Outcome: "failed", Attempt: 1, At: t0.Add(time.Second)})
	tr.Add(Result{Tenant: "b", Outcome: "migrated", At: t0.Add(time.Second)})
	if !tr.Complete() {
		t.Fatal("2 of 2 tenants reported: complete")
	}
	rep := tr.Report(t0.Add(time.Minute))
	if rep.OK() || len(rep.Failed()) != 1 {
		t.Fatal("a failed: not ok")
	}
	tr.Add(Result{Tenant: "a", Outcome: "migrated", Attempt: 1, At: t0.Add(2 * time.Second)})
	// an older result arriving late does not replace a newer one
	tr.Add(Result{Tenant: "b", Outcome: "failed", At: t0})
	rep = tr.Report(t0.Add(time.Minute))
	if !rep.OK() || len(rep.Databases) != 2 {
		t.Fatalf("report %+v", rep)
	}
	if rep.Summary.Total != 2 || rep.Summary.Counts["migrated"] != 2 || rep.Summary.Counts["failed"] != 0 || rep.Summary.Pending != 0 {
		t.Fatalf("summary %+v", rep.Summary)
	}
	if rep.Databases[0].Tenant != "a" {
		t.Fatal("sorted by tenant")
	}
	// pending tenants make a report not OK
	tr.SetTotal(3)
	if rep := tr.Report(time.Now()); rep.OK() || rep.Summary.Pending != 1 {
		t.Fatalf("pending %+v", rep.Summary)
	}
}

func TestCheckServerVersion(t *testing.T) {
	for v, ok := range map[string]bool{"2.9.0": true, "2.9.10": true, "2.10.1": true, "2.15.2": true, "3.0.0": true,
		"2.8.4": false, "1.4.1": false, "v2.9.10": true, "2.11.0-beta.1": true, "": false, "x": false} {
		err := CheckServerVersion(v)
		if (err == nil) != ok {
			t.Errorf("%q: err %v, want ok=%v", v, err, ok)
		}
	}
}

func TestValidName(t *testing.T) {
	for s, ok := range map[string]bool{"default": true, "eu-1": true, "a_b": true, "a.b": false, "": false, "a b": false, "*": false, ">": false} {
		if err := ValidName("node", s); (err == nil) != ok {
			t.Errorf("%q: %v", s, err)
		}
	}
}

// Several results for one tenant in one run (duplicate jobs, an enqueue
// during the run): a later `current` never replaces `migrated`, `applied`
// is the union of what was applied, `from` the version before the run.
func TestTrackerKeepsWhatHappenedInTheRun(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ap := func(vs ...int64) []engine.Applied {
		var out []engine.Applied
		for _, v := range vs {
			out = append(out, engine.Applied{Version: v, Name: fmt.Sprint(v)})
		}
		return out
	}
	tr := NewTracker("r", t0)
	tr.Add(Result{Tenant: "a", Outcome: "migrated", From: Int64(0), To: Int64(3), Applied: ap(1, 2, 3), Worker: "w1", At: t0.Add(1 * time.Second)})
	tr.Add(Result{Tenant: "a", Outcome: "current", From: Int64(3), To: Int64(3), Worker: "w2", At: t0.Add(2 * time.Second)})
	tr.Add(Result{Tenant: "a", Outcome: "current", From: Int64(3), To: Int64(3), Worker: "w3", At: t0.Add(3 * time.Second)})
	// b: migrated 1..2, then (new migrations deployed) migrated 3, then current
	tr.Add(Result{Tenant: "b", Outcome: "migrated", From: Int64(0), To: Int64(2), Applied: ap(1, 2), At: t0.Add(1 * time.Second)})
	tr.Add(Result{Tenant: "b", Outcome: "current", From: Int64(3), To: Int64(3), At: t0.Add(5 * time.Second)})
	tr.Add(Result{Tenant: "b", Outcome: "migrated", From: Int64(2), To: Int64(3), Applied: ap(3), At: t0.Add(4 * time.Second)}) // arrives late
	// c: migrated, then a later failure: the failure is what it ends with
	tr.Add(Result{Tenant: "c", Outcome: "migrated", From: Int64(1), To: Int64(3), Applied: ap(2, 3), At: t0.Add(1 * time.Second)})
	tr.Add(Result{Tenant: "c", Outcome: "failed", From: Int64(3), To: Int64(3), At: t0.Add(2 * time.Second)})
	// d: two workers of a duplicated job; the one that found it current
	// stamped its result before the one that migrated it: from is still 0
	tr.Add(Result{Tenant: "d", Outcome: "current", From: Int64(3), To: Int64(3), Worker: "w2", At: t0.Add(1 * time.Second)})
	tr.Add(Result{Tenant: "d", Outcome: "migrated", From: Int64(0), To: Int64(3), Applied: ap(1, 2, 3), Worker: "w1", At: t0.Add(2 * time.Second)})
	rep := tr.Report(t0.Add(time.Minute))
	if rep.Summary.Counts["migrated"] != 3 || rep.Summary.Counts["current"] != 0 || rep.Summary.Counts["failed"] != 1 {
		t.Fatalf("summary %+v", rep.Summary)
	}
	want := map[string]struct {
		outcome  string
		from, to int64
		applied  []int64
	}{
		"a": {"migrated", 0, 3, []int64{1, 2, 3}},
		"b": {"migrated", 0, 3, []int64{1, 2, 3}},
		"c": {"failed", 1, 3, []int64{2, 3}},
		"d": {"migrated", 0, 3, []int64{1, 2, 3}},
	}
	for _, d := range rep.Databases {
		w := want[d.Tenant]
		var vs []int64
		for _, a := range d.Applied {
			vs = append(vs, a.Version)
		}
		if d.Outcome != w.outcome || *d.From != w.from || *d.To != w.to || !reflect.DeepEqual(vs, w.applied) {
			t.Errorf("%s: %s %d->%d %v, want %+v", d.Tenant, d.Outcome, *d.From, *d.To, vs, w)
		}
	}
	if r, _ := tr.Result("a"); r.Worker != "w1" {
		t.Fatalf("a's entry is the migrating result (worker %s)", r.Worker)
	}
}
