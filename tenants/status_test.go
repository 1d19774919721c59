package tenants_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/shoal-dev/shoal/fleet/fleettest"
	"github.com/shoal-dev/shoal/tenants"
)

func TestFleetStatus(t *testing.T) {
	e := fleettest.Engine(t)
	root := t.TempDir()
	// t-000 fresh, t-001 v1, t-002 v2, t-003..5 at head
	fleettest.Fleet(t, e, root, 6, func(i int) int64 { return min(int64(i), fleettest.Head) })
	fleettest.Unmanaged(t, filepath.Join(root, "u-1", "app.db"))
	os.MkdirAll(filepath.Join(root, "c-1"), 0o755)
	os.WriteFile(filepath.Join(root, "c-1", "app.db"), []byte("this is not a SQLite database, not at all, really not......................................................................"), 0o644)

	st, err := tenants.Status(context.Background(), e, root, "*/app.db", 3, false)
	if err != nil {
		t.Fatal(err)
	}
	if st.Head != fleettest.Head || st.Total != 8 {
		t.Fatalf("head %d total %d", st.Head, st.Total)
	}
	want := map[string]int{"0": 1, "1": 1, "2": 1, "3": 3}
	if !reflect.DeepEqual(st.Versions, want) {
		t.Fatalf("versions %v, want %v", st.Versions, want)
	}
	if !reflect.DeepEqual(st.Behind, []string{"t-000/app.db", "t-001/app.db", "t-002/app.db"}) {
		t.Fatalf("behind %v", st.Behind)
	}
	if !reflect.DeepEqual(st.Unmanaged, []string{"u-1/app.db"}) || !reflect.DeepEqual(st.Corrupt, []string{"c-1/app.db"}) {
		t.Fatalf("unmanaged %v corrupt %v errors %v", st.Unmanaged, st.Corrupt, st.Errors)
	}
	if st.AtHead() {
		t.Fatal("not at head")
	}
	data, _ := json.Marshal(st)
	var m map[string]any
	json.Unmarshal(data, &m)
	for _, k := range []string{"head", "versions", "behind", "ahead", "unmanaged", "corrupt"} {
		if _, ok := m[k]; !ok {
			t.Fatalf("no %q in %s", k, data)
		}
	}
	if _, ok := m["ahead"].([]any); !ok {
		t.Fatalf("ahead not an array: %s", data)
	}

	// an empty fleet is at head, lists empty arrays
	st, err = tenants.Status(context.Background(), e, t.TempDir(), "*/app.db", 2, false)
	if err != nil || !st.AtHead() || st.Behind == nil || st.Ahead == nil {
		t.Fatalf("empty: %+v %v", st, err)
	}
}
