package engine

import (
	"strings"
	"testing"
)

func TestParseNameValid(t *testing.T) {
	tests := []struct {
		name string
		want MigrationName
	}{
		{"0001_create_users.sql", MigrationName{1, 4, '_', "create_users", ".sql"}},
		{"001-create-users.sql", MigrationName{1, 3, '-', "create-users", ".sql"}},
		{"1_x.sql", MigrationName{1, 1, '_', "x", ".sql"}},
		{"20240115103000_add_index.sql", MigrationName{20240115103000, 14, '_', "add_index", ".sql"}},
		{"0002_backfill.sh", MigrationName{2, 4, '_', "backfill", ".sh"}},
		{"0003_backfill.py", MigrationName{3, 4, '_', "backfill", ".py"}},
		{"0004_v1.2_fields.sql", MigrationName{4, 4, '_', "v1.2_fields", ".sql"}},
		{"0005_add users.sql", MigrationName{5, 4, '_', "add users", ".sql"}},
		{"0006__leading.sql", MigrationName{6, 4, '_', "_leading", ".sql"}},
		{"0007_café.sql", MigrationName{7, 4, '_', "café", ".sql"}},
		{"9223372036854775807_max.sql", MigrationName{9223372036854775807, 19, '_', "max", ".sql"}},
		{"00000000000000000000000000042_padded.sql", MigrationName{42, 29, '_', "padded", ".sql"}},
	}
	for _, tt := range tests {
		got, ok, err := ParseName(tt.name)
		if err != nil || !ok || got != tt.want {
			t.Errorf("ParseName(%q) = %+v, %v, %v; want %+v", tt.name, got, ok, err, tt.want)
			continue
		}
		if got.String() != tt.name {
			t.Errorf("ParseName(%q).String() = %q", tt.name, got.String())
		}
	}
}

func TestParseNameIgnored(t *testing.T) {
	for _, name := range []string{
		"", "README", "README.md", "readme.txt", "Readme-2.sql", ".DS_Store", ".0001_x.sql.swp",
		".gitkeep", "schema.sql", "shoal.sum", "notes.txt", "init.sql", "x0001_y.sql", "_0001.sql",
		"-1_x.sql", "+1_x.sql", "migrations.go", "٣_arabic_digit.sql",
	} {
		got, ok, err := ParseName(name)
		if ok || err != nil {
			t.Errorf("ParseName(%q) = %+v, %v, %v; want ignored", name, got, ok, err)
		}
	}
}

func TestParseNameErrors(t *testing.T) {
	tests := []struct {
		name string
		want string // in the error
	}{
		{"0001.sql", "no description"},
		{"0001", "not a migration name"},
		{"12abc.sql", "not a migration name"},
		{"0001 x.sql", "not a migration name"},
		{"0002_x.txt", `extension ".txt"`},
		{"0003_x.sql~", `extension ".sql~"`},
		{"0003_x.sql.bak", `extension ".bak"`},
		{"0003_x.orig", `extension ".orig"`},
		{"0004_x", "no extension"},
		{"0004_x.SQL", "must be lower case"},
		{"0004_x.Py", "must be lower case"},
		{"0005_.sql", "no description"},
		{"0005-.sh", "no description"},
		{"0005_ .sql", "no description"},
		{"0_zero.sql", "version 0 is invalid"},
		{"0000_zero.sql", "version 0 is invalid"},
		{"9223372036854775808_overflow.sql", "too large"},
		{"99999999999999999999_overflow.sql", "too large"},
		{"0006_bad\xffutf8.sql", "not valid UTF-8"},
		{"0007_new\nline.sql", "control character"},
		{"0008_tab\t.sql", "control character"},
	}
	for _, tt := range tests {
		got, ok, err := ParseName(tt.name)
		if err == nil || ok {
			t.Errorf("ParseName(%q) = %+v, %v, nil; want an error", tt.name, got, ok)
			continue
		}
		if !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParseName(%q) error %q, want it to mention %q", tt.name, err, tt.want)
		}
		if !strings.Contains(err.Error(), "rename") && !strings.Contains(err.Error(), "add .sql") {
			t.Errorf("ParseName(%q) error %q does not say what to do", tt.name, err)
		}
	}
}

func FuzzParseName(f *testing.F) {
	for _, s := range []string{
		"0001_create_users.sql", "001-x.sh", "1_x.py", "20240115103000_ts.sql", "0001.sql",
		"0002_x.txt", "12abc.sql", "0003_x.sql~", "0_zero.sql", "9223372036854775808_x.sql",
		"README.md", ".hidden", "schema.sql", "shoal.sum", "", "0", "1_", "1_.", "1_..sql", "1-\xff.sql",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		n, ok, err := ParseName(name)
		if ok && err != nil {
			t.Fatalf("ParseName(%q): ok and error %v", name, err)
		}
		if !ok {
			if n != (MigrationName{}) {
				t.Fatalf("ParseName(%q): not ok but %+v", name, n)
			}
			// Only names starting with an ASCII digit are ever errors.
			if err != nil && (name == "" || name[0] < '0' || name[0] > '9') {
				t.Fatalf("ParseName(%q): error for an ignored name: %v", name, err)
			}
			if err == nil && name != "" && name[0] >= '0' && name[0] <= '9' {
				t.Fatalf("ParseName(%q): a name starting with a digit was silently ignored", name)
			}
			return
		}
		if n.Version < 1 || n.Width < 1 || (n.Sep != '_' && n.Sep != '-') || n.Description == "" || !isMigrationExt(n.Ext) {
			t.Fatalf("ParseName(%q) = %+v: invalid fields", name, n)
		}
		if got := n.String(); got != name {
			t.Fatalf("ParseName(%q) = %+v does not round-trip: %q", name, n, got)
		}
		// The version survives re-parsing the formatted name.
		again, ok, err := ParseName(n.String())
		if !ok || err != nil || again != n {
			t.Fatalf("re-parsing %q: %+v, %v, %v", n.String(), again, ok, err)
		}
	})
}
