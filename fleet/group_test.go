package fleet

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
)

// 18 tenants failing the same migration the same way are one summary line,
// not 18; a different failure keeps its own line.
func TestSummaryGroupsFailures(t *testing.T) {
	rep := &Report{RunID: "r", Summary: Summary{Total: 19, Counts: map[string]int{"failed": 18, "unmanaged": 1}}}
	for i := range 18 {
		p := fmt.Sprintf("/srv/t-%02d/app.db", i)
		e := p + ": migration 0007_x.sql (up) failed at statement 2 (line 3): no such column: y; the database was left as before this step: fix the migration and run again"
		rep.Databases = append(rep.Databases, Result{Tenant: fmt.Sprintf("t-%02d/app.db", i), Path: p, Outcome: "failed", Error: &e, Attempt: 1})
	}
	u := "/srv/legacy/app.db: database is not managed by shoal"
	rep.Databases = append(rep.Databases, Result{Tenant: "legacy/app.db", Path: "/srv/legacy/app.db", Outcome: "unmanaged", Error: &u, Attempt: 1})
	var b bytes.Buffer
	PrintSummary(&b, rep)
	out := b.String()
	if !strings.Contains(out, "18 tenants: failed: migration 0007_x.sql (up) failed at statement 2 (line 3): no such column: y") ||
		!strings.Contains(out, "and 15 more") || strings.Count(out, "no such column") != 1 || !strings.Contains(out, "legacy/app.db") {
		t.Fatalf("summary:\n%s", out)
	}
}
