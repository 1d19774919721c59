package schema

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/shoal-dev/shoal/engine"
)

func TestSumFormatParseVerify(t *testing.T) {
	fsys := dir(map[string]string{
		"0001_a.sql": "CREATE TABLE a (x);", "0002_b.sh": "echo hi", "README.md": "x", "schema.sql": "x",
	})
	entries, err := ComputeSum(fsys)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 2 || entries[0].File != "0001_a.sql" || entries[0].Checksum != engine.Checksum([]byte("CREATE TABLE a (x);")) {
		t.Fatalf("%+v", entries)
	}
	data := FormatSum(entries)
	back, total, err := ParseSum(data)
	if err != nil || len(back) != 2 || back[1] != entries[1] || total != sumTotal(entries) {
		t.Fatalf("%v %+v %s", err, back, total)
	}
	fsys[engine.SumFile] = &fstest.MapFile{Data: data}
	if p, err := VerifySum(fsys); err != nil || len(p) != 0 {
		t.Fatalf("%v %v", p, err)
	}
	// CRLF and a BOM do not change a checksum.
	fsys["0001_a.sql"] = &fstest.MapFile{Data: []byte("\xef\xbb\xbfCREATE TABLE a (x);")}
	if p, _ := VerifySum(fsys); len(p) != 0 {
		t.Fatalf("%v", p)
	}
	cases := []struct {
		name string
		edit func(m fstest.MapFS)
		want string
	}{
		{"changed", func(m fstest.MapFS) { m["0001_a.sql"] = &fstest.MapFile{Data: []byte("CREATE TABLE a (y);")} }, "0001_a.sql changed"},
		{"new file", func(m fstest.MapFS) { m["0003_c.sql"] = &fstest.MapFile{Data: []byte("x")} }, "0003_c.sql is not in shoal.sum"},
		{"gone file", func(m fstest.MapFS) { delete(m, "0002_b.sh") }, "lists 0002_b.sh"},
		{"total", func(m fstest.MapFS) {
			m[engine.SumFile] = &fstest.MapFile{Data: []byte(strings.Replace(string(data), "total ", "total 0", 1))}
		}, "total line"},
		{"conflict", func(m fstest.MapFS) {
			m[engine.SumFile] = &fstest.MapFile{Data: []byte("<<<<<<< HEAD\n0003_a.sql x\n=======\n0003_b.sql y\n>>>>>>> b\n")}
		}, "merge conflict"},
		{"garbage", func(m fstest.MapFS) { m[engine.SumFile] = &fstest.MapFile{Data: []byte("hello\n")} }, "line 1"},
	}
	for _, tc := range cases {
		m := fstest.MapFS{}
		for k, v := range fsys {
			m[k] = v
		}
		tc.edit(m)
		p, err := VerifySum(m)
		if err != nil || len(p) != 1 || !strings.Contains(p[0], tc.want) {
			t.Errorf("%s: %v %v", tc.name, p, err)
		}
	}
	delete(fsys, engine.SumFile)
	if p, err := VerifySum(fsys); p != nil || err != nil {
		t.Fatal("no sum file, no problems")
	}
}

func TestWriteSumAndDuplicates(t *testing.T) {
	d := t.TempDir()
	os.WriteFile(filepath.Join(d, "0001_a.sql"), []byte("CREATE TABLE a (x);"), 0o644)
	os.WriteFile(filepath.Join(d, "0001_b.sql"), []byte("CREATE TABLE b (x);"), 0o644)
	changed, err := WriteSum(d)
	if err != nil || !changed {
		t.Fatal(err)
	}
	if changed, _ := WriteSum(d); changed {
		t.Fatal("rewriting the same content reports a change")
	}
	files, err := ListMigrationFiles(os.DirFS(d))
	if err != nil || len(files) != 2 || files[1].File != "0001_b.sql" {
		t.Fatalf("duplicates are listed, not refused: %+v %v", files, err)
	}
	os.WriteFile(filepath.Join(d, "0002.sql"), nil, 0o644)
	if _, err := WriteSum(d); err == nil || !strings.Contains(err.Error(), "0002.sql") {
		t.Fatalf("a bad name: %v", err)
	}
}

func TestSumSides(t *testing.T) {
	data := "# c\n0001_a.sql x\n<<<<<<< HEAD\n0002_ours.sql y\ntotal 1\n||||||| base\ntotal 0\n=======\n0002_theirs.sql z\ntotal 2\n>>>>>>> b\n"
	ours := SumSides([]byte(data))
	if !ours["0001_a.sql"] || !ours["0002_ours.sql"] || ours["0002_theirs.sql"] || ours["total"] || len(ours) != 2 {
		t.Fatalf("%v", ours)
	}
	if _, _, err := ParseSum([]byte(data)); !errors.Is(err, ErrSumConflict) {
		t.Fatal(err)
	}
}

// A migration name with a space is valid; the sum file written for it must
// read back (else `shoal check` fails and `shoal hash` cannot fix it).
func TestSumFileNameWithSpace(t *testing.T) {
	fsys := dir(map[string]string{"0001_add users.sql": "CREATE TABLE a (x);", "0002_b.sql": "CREATE TABLE b (x);"})
	entries, err := ComputeSum(fsys)
	if err != nil || len(entries) != 2 {
		t.Fatalf("%v %+v", err, entries)
	}
	data := FormatSum(entries)
	fsys[engine.SumFile] = &fstest.MapFile{Data: data}
	if p, err := VerifySum(fsys); err != nil || len(p) != 0 {
		t.Fatalf("%v %v", p, err)
	}
	if ours := SumSides(data); !ours["0001_add users.sql"] || !ours["0002_b.sql"] || len(ours) != 2 {
		t.Fatalf("%v", ours)
	}
}

// The sum file of a foreign layout lists every file of every migration,
// down parts and side files included, so an edited down part shows.
func TestLayoutSumFile(t *testing.T) {
	entries, err := ComputeSum(os.DirFS(filepath.Join("..", "engine", "testdata", "layouts", "diesel")))
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, e := range entries {
		files = append(files, e.File)
	}
	want := []string{"00000000000000_diesel_initial_setup/up.sql", "00000000000000_diesel_initial_setup/down.sql", "2024-01-15-100000_create_users/up.sql", "2024-01-15-100000_create_users/down.sql"}
	if len(files) != 11 || !reflect.DeepEqual(files[:4], want) {
		t.Fatalf("%v", files)
	}
}
