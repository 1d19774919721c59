package fleet

import (
	"errors"
	"strings"
	"testing"
	"time"
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

func TestBoundResult(t *testing.T) {
	e := strings.Repeat("a", 100) + strings.Repeat("é", 50000) + "the end"
	r := BoundResult(Result{Tenant: strings.Repeat("t", 10000), Error: &e, At: time.Now()}, 1000)
	if len(*r.Error) > 1100 || !strings.HasSuffix(*r.Error, "the end") || !strings.HasPrefix(*r.Error, "aaa") || len(r.Tenant) > MaxTenantBytes+40 {
		t.Fatalf("error %d bytes, tenant %d bytes", len(*r.Error), len(r.Tenant))
	}
}
