package fleet

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/engine"
)

// A worker's result for a DB it took over says adopted and where from; the
// key is null otherwise; adopted counts as at head; a later `current` of
// the same run never replaces it in the report.
func TestAdoptedResult(t *testing.T) {
	job := Job{RunID: "r", Tenant: "a", Path: "/x/a.db", Adopt: true}
	res := &engine.Result{From: 2, To: 4, Applied: []engine.Applied{{Version: 3}, {Version: 4}},
		Adopted: &engine.Enrolled{Version: 2, Source: "goose (goose_db_version)", From: "goose"}}
	r := NewResult(job, res, nil, 1, "w", time.Second)
	if r.Outcome != engine.OutcomeAdopted || r.AdoptedFrom == nil || *r.AdoptedFrom != "goose (goose_db_version)" || !AtHead(r.Outcome) {
		t.Fatalf("%+v", r)
	}
	plain := NewResult(Job{RunID: "r", Tenant: "b"}, &engine.Result{From: 4, To: 4}, nil, 1, "w", time.Second)
	b, _ := json.Marshal(plain)
	if !strings.Contains(string(b), `"adopted_from":null`) || plain.Outcome != engine.OutcomeCurrent {
		t.Fatalf("%s", b)
	}
	jb, _ := json.Marshal(job)
	if !strings.Contains(string(jb), `"adopt":true`) {
		t.Fatalf("%s", jb)
	}
	t0 := time.Now()
	tr := NewTracker("r", t0)
	r.At = t0.Add(time.Second)
	tr.Add(r)
	tr.Add(Result{RunID: "r", Tenant: "a", Outcome: engine.OutcomeCurrent, From: Int64(4), To: Int64(4), At: t0.Add(2 * time.Second)})
	rep := tr.Report(t0.Add(time.Minute))
	if rep.Summary.Counts[engine.OutcomeAdopted] != 1 || rep.Databases[0].Outcome != engine.OutcomeAdopted || *rep.Databases[0].From != 2 || !rep.OK() {
		t.Fatalf("%+v %+v", rep.Summary, rep.Databases[0])
	}
}
