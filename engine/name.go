package engine

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// SumFile is the name of shoal's checksum file inside a migrations
// directory; like README* files, dotfiles and schema.sql it is not a
// migration.
const SumFile = "shoal.sum"

// MigrationName is a parsed migration file name
// `<version><sep><description>.<ext>`.
type MigrationName struct {
	// Version is the leading digits read as an integer (>= 1).
	Version int64
	// Width is the number of digits in the file name ("0001" -> 4), so new
	// files can be padded like their neighbours.
	Width int
	// Sep is '_' or '-'.
	Sep byte
	// Description is the part between the separator and the extension.
	Description string
	// Ext is ".sql", ".sh" or ".py".
	Ext string
}

// String formats the name back into the file name it was parsed from.
func (n MigrationName) String() string {
	return fmt.Sprintf("%0*d%c%s%s", n.Width, n.Version, n.Sep, n.Description, n.Ext)
}

// migrationExts are the extensions of migration files.
var migrationExts = []string{".sql", ".sh", ".py"}

// nameHint ends file name errors: what a valid name looks like.
const nameHint = "migration files are named <version>_<description>.sql (or .sh, .py), e.g. 0001_create_users.sql"

// ParseName parses a migration file name.
//
// It returns ok=false and a nil error for files that are not migrations and
// are ignored: README*, dotfiles, schema.sql, the sum file, and any other name
// that does not start with a digit. A name that starts with a digit is meant
// to be a migration: if it does not parse (no separator, no description,
// another extension, version 0, a version too large), ParseName returns an
// error saying what is wrong and what to do, so a typo never makes a
// migration silently disappear.
func ParseName(name string) (n MigrationName, ok bool, err error) {
	if ignoredName(name) {
		return MigrationName{}, false, nil
	}
	n, err = parseMigrationName(name)
	if err != nil {
		return MigrationName{}, false, err
	}
	return n, true, nil
}

// ignoredName reports names that are never migrations.
func ignoredName(name string) bool {
	switch {
	case name == "":
		return true
	case name[0] == '.':
		return true // dotfiles, editor swap files, .gitkeep
	case len(name) >= 6 && strings.EqualFold(name[:6], "readme"):
		return true
	case name == "schema.sql" || name == SumFile:
		return true
	case name[0] < '0' || name[0] > '9':
		return true
	}
	return false
}

func parseMigrationName(name string) (MigrationName, error) {
	if !utf8.ValidString(name) {
		return MigrationName{}, errors.New("the file name is not valid UTF-8: rename it; " + nameHint)
	}
	for _, r := range name {
		if unicode.IsControl(r) {
			return MigrationName{}, fmt.Errorf("the file name contains the control character %q: rename it; %s", r, nameHint)
		}
	}
	i := 0
	for i < len(name) && name[i] >= '0' && name[i] <= '9' {
		i++
	}
	digits, rest := name[:i], name[i:]
	if rest == "" || (rest[0] != '_' && rest[0] != '-') {
		what := "no '_' or '-' after the version"
		if strings.HasPrefix(rest, ".") {
			what = "no description after the version"
		}
		return MigrationName{}, fmt.Errorf("starts with a digit but is not a migration name (%s): rename it, or move it out of the directory; %s", what, nameHint)
	}
	sep := rest[0]
	rest = rest[1:]
	ext := ""
	if dot := strings.LastIndexByte(rest, '.'); dot >= 0 {
		ext = rest[dot:]
	}
	if !isMigrationExt(ext) {
		switch {
		case ext == "":
			return MigrationName{}, fmt.Errorf("starts with a digit but has no extension: add .sql, .sh or .py, or move it out of the directory; %s", nameHint)
		case isMigrationExt(strings.ToLower(ext)):
			return MigrationName{}, fmt.Errorf("extension %q must be lower case: rename it to end in %s", ext, strings.ToLower(ext))
		default:
			return MigrationName{}, fmt.Errorf("starts with a digit but has extension %q, not .sql, .sh or .py: rename it, or move it (a backup or editor file?) out of the directory; %s", ext, nameHint)
		}
	}
	desc := rest[:len(rest)-len(ext)]
	if strings.TrimSpace(desc) == "" {
		return MigrationName{}, fmt.Errorf("has no description after the version: rename it, e.g. %s%cdescribe_the_change%s", digits, sep, ext)
	}
	v, err := strconv.ParseInt(digits, 10, 64)
	if err != nil {
		return MigrationName{}, fmt.Errorf("version %s is too large (the largest is %d): rename it with a smaller version", digits, int64(1<<63-1))
	}
	if v == 0 {
		return MigrationName{}, errors.New("version 0 is invalid (versions start at 1; 0 is an empty database): rename it")
	}
	return MigrationName{Version: v, Width: len(digits), Sep: sep, Description: desc, Ext: ext}, nil
}

func isMigrationExt(ext string) bool {
	for _, e := range migrationExts {
		if ext == e {
			return true
		}
	}
	return false
}
