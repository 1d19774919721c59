package engine

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// This file reads the directories of other migration tools (one function
// per layout, see layout.go): which files make one migration, its version
// and its up and down parts, by each tool's own rules.

var reSimpleSQL = regexp.MustCompile(`^([0-9]+)_(.+)\.sql$`)

// pairUnits reads golang-migrate's layout (N_name.up.sql + N_name.down.sql)
// and sqlx's (the same, or N_name.sql alone; a file starting with
// "-- no-transaction" runs outside a transaction).
func pairUnits(fsys fs.FS, dirName, layout string) ([]layoutUnit, error) {
	files, _, err := topEntries(fsys, dirName)
	if err != nil {
		return nil, err
	}
	type pair struct{ up, down, name string }
	byVersion := map[int64]*pair{}
	var order []int64
	get := func(v int64) *pair {
		p := byVersion[v]
		if p == nil {
			p = &pair{}
			byVersion[v] = p
			order = append(order, v)
		}
		return p
	}
	for _, f := range files {
		if m := rePair.FindStringSubmatch(f); m != nil {
			v, err := parseVersion(dirName, f, m[1])
			if err != nil {
				return nil, err
			}
			p := get(v)
			slot := &p.up
			if m[3] == "down" {
				slot = &p.down
			}
			if *slot != "" {
				return nil, &DirError{Dir: dirName, File: *slot, Other: f, Reason: fmt.Sprintf("both are the %s part of version %d: keep one", m[3], v)}
			}
			*slot = f
			if m[3] == "up" || p.name == "" {
				p.name = m[2]
			}
			continue
		}
		if m := reSimpleSQL.FindStringSubmatch(f); m != nil && layout == LayoutSqlx {
			v, err := parseVersion(dirName, f, m[1])
			if err != nil {
				return nil, err
			}
			p := get(v)
			if p.up != "" {
				return nil, &DirError{Dir: dirName, File: p.up, Other: f, Kind: ErrDuplicateVersion, Reason: fmt.Sprintf("both have version %d: keep one", v)}
			}
			p.up, p.name = f, m[2]
			continue
		}
		if strings.HasSuffix(f, ".sql") || reNumbered.MatchString(f) {
			return nil, &DirError{Dir: dirName, File: f, Reason: fmt.Sprintf("is not a %s migration file: name it N_description.up.sql (and N_description.down.sql), or move it out of the directory", layout)}
		}
	}
	var out []layoutUnit
	for _, v := range order {
		p := byVersion[v]
		if p.up == "" {
			return nil, &DirError{Dir: dirName, File: p.down, Reason: fmt.Sprintf("is a down part without an up part for version %d: add %d_%s.up.sql or remove it", v, v, p.name)}
		}
		u := layoutUnit{version: v, name: p.name, toolKey: strconv.FormatInt(v, 10), up: p.up, down: p.down}
		if layout == LayoutSqlx {
			u.split = sqlxSplit
		}
		out = append(out, u)
	}
	return out, nil
}

// sqlxSplit honours sqlx's "-- no-transaction" first line.
func sqlxSplit(text string) (string, string, bool, bool, error) {
	return text, "", false, strings.HasPrefix(text, sqlxNoTxDirective), nil
}

// gooseUnits reads goose's SQL layout: N_name.sql with annotations.
func gooseUnits(fsys fs.FS, dirName string) ([]layoutUnit, error) {
	files, _, err := topEntries(fsys, dirName)
	if err != nil {
		return nil, err
	}
	var out []layoutUnit
	for _, f := range files {
		if strings.HasSuffix(f, ".go") && reNumbered.MatchString(f) {
			return nil, &DirError{Dir: dirName, File: f, Reason: "is a goose Go migration: shoal runs no Go source from a directory; register it in the program that embeds shoal as an engine.GoMigration with the same version (Options.Go), and keep the file out of --dir"}
		}
		m := reSimpleSQL.FindStringSubmatch(f)
		if m == nil {
			if strings.HasSuffix(f, ".sql") || reNumbered.MatchString(f) {
				return nil, &DirError{Dir: dirName, File: f, Reason: "is not a goose migration file: name it N_description.sql (goose needs the '_'), or move it out of the directory"}
			}
			continue
		}
		v, err := parseVersion(dirName, f, m[1])
		if err != nil {
			return nil, err
		}
		out = append(out, layoutUnit{version: v, name: m[2], toolKey: strconv.FormatInt(v, 10), up: f, split: gooseSplit})
	}
	return out, nil
}

// gooseSplit cuts a goose SQL file into its up and down sections by its
// annotations (-- +goose Up, Down, StatementBegin, StatementEnd,
// NO TRANSACTION), the way goose's parser accepts them. Statements are then
// split the way SQLite reads them, which gives the statements goose sends
// (StatementBegin/End exist for goose's line-based splitter).
func gooseSplit(text string) (up, down string, hasDown, noTx bool, err error) {
	lines := strings.Split(text, "\n")
	const (
		start = iota
		inUp
		inDown
	)
	section := make([]int, len(lines)) // start, inUp or inDown; -1 for annotations
	state, upLine, downLine, blockLine := start, 0, 0, 0
	for i, line := range lines {
		if !isGooseAnnotation(line) {
			if state == start {
				t := strings.TrimSpace(line)
				if t != "" && !strings.HasPrefix(t, "--") {
					return "", "", false, false, fmt.Errorf("line %d: SQL before \"-- +goose Up\" belongs to no section: move it below the annotation", i+1)
				}
			}
			section[i] = state
			continue
		}
		section[i] = -1
		if line != strings.TrimLeft(line, " \t") {
			return "", "", false, false, fmt.Errorf("line %d: goose annotation %q starts with blanks, which goose refuses: remove them", i+1, strings.TrimSpace(line))
		}
		cmd := strings.TrimSpace(strings.Replace(strings.ReplaceAll(line, "--", ""), "+goose", "", 1))
		switch strings.ToLower(cmd) {
		case "up":
			if upLine > 0 {
				return "", "", false, false, fmt.Errorf("line %d: a second \"-- +goose Up\" (the first is on line %d): remove one", i+1, upLine)
			}
			upLine, state = i+1, inUp
		case "down":
			switch {
			case upLine == 0:
				return "", "", false, false, fmt.Errorf("line %d: \"-- +goose Down\" comes before \"-- +goose Up\": put the up section first", i+1)
			case downLine > 0:
				return "", "", false, false, fmt.Errorf("line %d: a second \"-- +goose Down\" (the first is on line %d): remove one", i+1, downLine)
			case blockLine > 0:
				return "", "", false, false, fmt.Errorf("line %d: \"-- +goose Down\" inside the StatementBegin of line %d: add \"-- +goose StatementEnd\" before it", i+1, blockLine)
			}
			downLine, state, hasDown = i+1, inDown, true
		case "statementbegin":
			if state == start {
				return "", "", false, false, fmt.Errorf("line %d: \"-- +goose StatementBegin\" before \"-- +goose Up\": put it inside a section", i+1)
			}
			if blockLine > 0 {
				return "", "", false, false, fmt.Errorf("line %d: a second \"-- +goose StatementBegin\" (the first is on line %d has no StatementEnd)", i+1, blockLine)
			}
			blockLine = i + 1
		case "statementend":
			if blockLine == 0 {
				return "", "", false, false, fmt.Errorf("line %d: \"-- +goose StatementEnd\" without a StatementBegin before it", i+1)
			}
			blockLine = 0
		case "no transaction":
			noTx = true
		case "envsub off":
		case "envsub on":
			return "", "", false, false, fmt.Errorf("line %d: \"-- +goose ENVSUB ON\" makes goose substitute environment variables in the SQL; shoal runs the text as written: put the values in the file (in a new migration), or run this one with goose", i+1)
		default:
			return "", "", false, false, fmt.Errorf("line %d: unknown goose annotation %q: goose knows Up, Down, StatementBegin, StatementEnd, NO TRANSACTION and ENVSUB ON/OFF", i+1, cmd)
		}
	}
	if upLine == 0 {
		return "", "", false, false, fmt.Errorf("has no \"-- +goose Up\" annotation, which goose requires: add it above the up statements")
	}
	if blockLine > 0 {
		return "", "", false, false, fmt.Errorf("line %d: \"-- +goose StatementBegin\" has no StatementEnd", blockLine)
	}
	up = blankOutside(lines, func(i int) bool { return section[i] == inUp })
	down = blankOutside(lines, func(i int) bool { return section[i] == inDown })
	return up, down, hasDown, noTx, nil
}

// dieselUnits reads diesel's layout: one directory per migration named
// VERSION_name (VERSION YYYY-MM-DD-HHMMSS or digits) holding up.sql, down.sql
// and optionally metadata.toml (run_in_transaction = false). diesel records
// VERSION without its dashes; 00000000000000_diesel_initial_setup, whose
// version is 0 there, is version 1 in shoal (shoal's versions start at 1).
func dieselUnits(fsys fs.FS, dirName string) ([]layoutUnit, error) {
	files, dirs, err := topEntries(fsys, dirName)
	if err != nil {
		return nil, err
	}
	for _, f := range files {
		if strings.HasSuffix(f, ".sql") || reNumbered.MatchString(f) {
			return nil, &DirError{Dir: dirName, File: f, Reason: "is a migration file outside a migration directory: diesel keeps each migration in VERSION_name/up.sql (and down.sql); move it into one"}
		}
	}
	var out []layoutUnit
	for _, d := range dirs {
		m := reDiesel.FindStringSubmatch(d)
		if m == nil {
			if fileExists(fsys, d+"/up.sql") {
				return nil, &DirError{Dir: dirName, File: d + "/up.sql", Reason: "is in a directory whose name is not VERSION_name (e.g. 2024-01-15-103000_create_users): rename the directory"}
			}
			continue
		}
		if !fileExists(fsys, d+"/up.sql") {
			return nil, &DirError{Dir: dirName, File: d, Reason: "is a diesel migration directory without up.sql: add it or remove the directory"}
		}
		key := strings.ReplaceAll(m[1], "-", "")
		u := layoutUnit{name: m[2], toolKey: key, up: d + "/up.sql"}
		if strings.Trim(key, "0") == "" {
			u.version, u.allowEmpty = 1, true
		} else if u.version, err = parseVersion(dirName, d, key); err != nil {
			return nil, err
		}
		if fileExists(fsys, d+"/down.sql") {
			u.down = d + "/down.sql"
		}
		if meta := d + "/metadata.toml"; fileExists(fsys, meta) {
			data, err := readLayoutFile(fsys, dirName, meta)
			if err != nil {
				return nil, err
			}
			v, ok, err := tomlBool(data, "run_in_transaction")
			if err != nil {
				return nil, &DirError{Dir: dirName, File: meta, Reason: err.Error()}
			}
			if ok && !v {
				u.upNoTx, u.downNoTx = true, true
			}
			u.extra = append(u.extra, meta)
		}
		out = append(out, u)
	}
	return out, nil
}

// tomlBool reads `key = true|false` at the top level of a small TOML file.
func tomlBool(data []byte, key string) (value, ok bool, err error) {
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		t := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(t, "[") {
			return false, false, nil
		}
		k, v, found := strings.Cut(t, "=")
		if !found || strings.TrimSpace(k) != key {
			continue
		}
		v = strings.TrimSpace(v)
		if i := strings.IndexByte(v, '#'); i >= 0 {
			v = strings.TrimSpace(v[:i])
		}
		switch v {
		case "true":
			return true, true, nil
		case "false":
			return false, true, nil
		}
		return false, false, fmt.Errorf("%s = %s: want true or false", key, v)
	}
	return false, false, nil
}

// tomlString reads `key = "value"` at the top level of a small TOML file.
func tomlString(data []byte, key string) (string, bool) {
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		t := strings.TrimSpace(sc.Text())
		k, v, found := strings.Cut(t, "=")
		if !found || strings.TrimSpace(k) != key {
			continue
		}
		v = strings.TrimSpace(v)
		if i := strings.IndexByte(v, '#'); i >= 0 && !strings.HasPrefix(v, `"`) {
			v = strings.TrimSpace(v[:i])
		}
		if len(v) >= 2 && v[0] == '"' {
			if j := strings.IndexByte(v[1:], '"'); j >= 0 {
				return v[1 : 1+j], true
			}
		}
		return v, true
	}
	return "", false
}

// flywayFile is one parsed Flyway/refinery file name.
type flywayFile struct {
	path    string
	prefix  byte   // 'V', 'U', 'R', 'B'
	version string // as written ("1_1", "1.1")
	parts   []int64
	desc    string
	conf    bool // a .sql.conf file
}

// flywayParts splits a Flyway version ("1.1", "1_1", "001") into numbers,
// dropping trailing zeros (Flyway holds 1.0 and 1 for the same version).
func flywayParts(v string) ([]int64, bool) {
	if v == "" {
		return nil, false
	}
	fields := strings.FieldsFunc(v, func(r rune) bool { return r == '.' || r == '_' })
	if len(fields) == 0 {
		return nil, false
	}
	parts := make([]int64, 0, len(fields))
	for _, f := range fields {
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil || n < 0 {
			return nil, false
		}
		parts = append(parts, n)
	}
	for len(parts) > 1 && parts[len(parts)-1] == 0 {
		parts = parts[:len(parts)-1]
	}
	return parts, true
}

// flywayKey is the canonical form of a Flyway version: its numbers joined
// by dots, trailing zeros dropped ("1_1" and "1.1.0" -> "1.1").
func flywayKey(v string) string {
	parts, ok := flywayParts(v)
	if !ok {
		return v
	}
	s := make([]string, len(parts))
	for i, p := range parts {
		s[i] = strconv.FormatInt(p, 10)
	}
	return strings.Join(s, ".")
}

// flywayFiles lists the Flyway/refinery files beneath fsys (Flyway scans
// its locations recursively).
func flywayFiles(fsys fs.FS, dirName string) ([]flywayFile, error) {
	var out []flywayFile
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return &DirError{Dir: dirName, File: p, Reason: fmt.Sprintf("cannot be read (%v): check its permissions", err)}
		}
		base := path.Base(p)
		if p != "." && ignoredLayoutName(base) {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			return nil
		}
		m := reFlyway.FindStringSubmatch(base)
		if m == nil {
			if strings.HasSuffix(base, ".sql") {
				return &DirError{Dir: dirName, File: p, Reason: "is not a Flyway migration file: name it V<version>__<description>.sql (undo: U<version>__<description>.sql), or move it out of the directory"}
			}
			return nil
		}
		f := flywayFile{path: p, prefix: m[1][0], version: m[2], desc: m[3], conf: m[4] != ""}
		switch f.prefix {
		case 'R':
			if m[2] != "" {
				return &DirError{Dir: dirName, File: p, Reason: "a repeatable migration (R__) has no version: name it R__<description>.sql"}
			}
			return &DirError{Dir: dirName, File: p, Reason: "is a Flyway repeatable migration: shoal does not run repeatables (Flyway re-runs them whenever their text changes, after the versioned ones); make it a versioned migration (V<next>__" + m[3] + ".sql, with CREATE ... after a DROP ... IF EXISTS) and move the old file out of the directory"}
		case 'B':
			return &DirError{Dir: dirName, File: p, Reason: "is a Flyway baseline migration (B<version>__): shoal does not read baseline migrations; keep the V files, or enroll existing DBs at that version with `shoal enroll --version`"}
		}
		parts, ok := flywayParts(f.version)
		if !ok {
			return &DirError{Dir: dirName, File: p, Reason: fmt.Sprintf("version %q is not numbers separated by '.' or '_' (e.g. V1__, V1_1__, V1.2__): rename it", f.version)}
		}
		f.parts = parts
		out = append(out, f)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// flywayOrRefinery tells a refinery directory from a Flyway one: in
// refinery a U file is an up migration of its own ("unversioned"), in
// Flyway the undo of the V file with its version.
func flywayOrRefinery(fsys fs.FS) string {
	files, err := flywayFiles(fsys, "")
	if err != nil {
		return LayoutFlyway
	}
	vs := map[string]bool{}
	for _, f := range files {
		if f.prefix == 'V' && !f.conf {
			vs[flywayKey(f.version)] = true
		}
	}
	for _, f := range files {
		if f.prefix == 'U' && !f.conf && !vs[flywayKey(f.version)] {
			return LayoutRefinery
		}
	}
	return LayoutFlyway
}

// flywayUnits reads Flyway's layout (V = versioned, U = its undo, .sql.conf
// with executeInTransaction=false) or refinery's (V and U both up
// migrations). Dotted versions are ordered as Flyway orders them, by a
// defined integer: with at most one number in every version, the number
// itself; else, with up to K numbers, each number after the first below
// 1000, v1*1000^(K-1) + v2*1000^(K-2) + ... (V1 -> 1000 and V1_1 -> 1001
// when K is 2).
func flywayUnits(fsys fs.FS, dirName, layout string) ([]layoutUnit, error) {
	files, err := flywayFiles(fsys, dirName)
	if err != nil {
		return nil, err
	}
	k := 1
	for _, f := range files {
		if len(f.parts) > k {
			k = len(f.parts)
		}
	}
	toInt := func(f flywayFile) (int64, error) {
		var v int64
		for i := 0; i < k; i++ {
			var p int64
			if i < len(f.parts) {
				p = f.parts[i]
			}
			if i > 0 && p >= 1000 {
				return 0, &DirError{Dir: dirName, File: f.path, Reason: fmt.Sprintf("version %s: shoal orders dotted versions by a number in which each part after the first is below 1000; rename it", f.version)}
			}
			if i > 0 {
				if v > (1<<63-1-p)/1000 {
					return 0, &DirError{Dir: dirName, File: f.path, Reason: fmt.Sprintf("version %s is too large to order with the dotted versions of this directory: rename it", f.version)}
				}
				v = v*1000 + p
			} else {
				v = p
			}
		}
		if v <= 0 {
			return 0, &DirError{Dir: dirName, File: f.path, Reason: "version 0 is invalid (versions start at 1; 0 is an empty database): rename it"}
		}
		return v, nil
	}
	sort.Slice(files, func(i, j int) bool { return files[i].path < files[j].path })
	units := map[int64]*layoutUnit{}
	var order []int64
	confs := map[string]flywayFile{}
	type undo struct {
		f flywayFile
		v int64
	}
	var undos []undo
	for _, f := range files {
		if f.conf {
			confs[strings.TrimSuffix(f.path, ".conf")] = f
			continue
		}
		v, err := toInt(f)
		if err != nil {
			return nil, err
		}
		if f.prefix == 'U' && layout == LayoutFlyway {
			undos = append(undos, undo{f, v})
			continue
		}
		if u, dup := units[v]; dup {
			return nil, &DirError{Dir: dirName, File: u.up, Other: f.path, Kind: ErrDuplicateVersion, Reason: fmt.Sprintf("both have version %s: rename one of them so that every version is used once", flywayKey(f.version))}
		}
		units[v] = &layoutUnit{version: v, name: f.desc, toolKey: flywayKey(f.version), up: f.path}
		order = append(order, v)
	}
	for _, u := range undos {
		t := units[u.v]
		if t == nil {
			return nil, &DirError{Dir: dirName, File: u.f.path, Reason: fmt.Sprintf("is the undo of version %s, which has no V file: add V%s__<description>.sql or remove it", flywayKey(u.f.version), u.f.version)}
		}
		if t.down != "" {
			return nil, &DirError{Dir: dirName, File: t.down, Other: u.f.path, Reason: "both undo version " + flywayKey(u.f.version) + ": keep one"}
		}
		t.down = u.f.path
	}
	for script, c := range confs {
		var t *layoutUnit
		down := false
		for _, u := range units {
			if u.up == script {
				t = u
			} else if u.down == script {
				t, down = u, true
			}
		}
		if t == nil {
			return nil, &DirError{Dir: dirName, File: c.path, Reason: "configures " + script + ", which is not a migration here: rename or remove it"}
		}
		data, err := readLayoutFile(fsys, dirName, c.path)
		if err != nil {
			return nil, err
		}
		tx, ok, err := tomlBool(bytes.ReplaceAll(data, []byte(":"), []byte("=")), "executeInTransaction")
		if err != nil {
			return nil, &DirError{Dir: dirName, File: c.path, Reason: err.Error()}
		}
		if ok && !tx {
			if down {
				t.downNoTx = true
			} else {
				t.upNoTx = true
			}
		}
		t.extra = append(t.extra, c.path)
	}
	sort.Slice(order, func(i, j int) bool { return order[i] < order[j] })
	out := make([]layoutUnit, 0, len(order))
	for _, v := range order {
		out = append(out, *units[v])
	}
	return out, nil
}

// prismaUnits reads Prisma's layout: <timestamp>_name/migration.sql, with
// migration_lock.toml naming the provider (it must be sqlite).
func prismaUnits(fsys fs.FS, dirName string) ([]layoutUnit, error) {
	files, dirs, err := topEntries(fsys, dirName)
	if err != nil {
		return nil, err
	}
	for _, f := range files {
		if f == "migration_lock.toml" {
			data, err := readLayoutFile(fsys, dirName, f)
			if err != nil {
				return nil, err
			}
			if p, ok := tomlString(data, "provider"); ok && p != "sqlite" {
				return nil, &DirError{Dir: dirName, File: f, Reason: fmt.Sprintf("names the provider %q: these migrations were written for %s, not SQLite; shoal migrates SQLite databases", p, p)}
			}
			continue
		}
		if strings.HasSuffix(f, ".sql") || reNumbered.MatchString(f) {
			return nil, &DirError{Dir: dirName, File: f, Reason: "is a migration file outside a migration directory: Prisma keeps each migration in <timestamp>_name/migration.sql; move it into one"}
		}
	}
	var out []layoutUnit
	for _, d := range dirs {
		m := rePrisma.FindStringSubmatch(d)
		has := fileExists(fsys, d+"/migration.sql")
		if m == nil {
			if has {
				return nil, &DirError{Dir: dirName, File: d + "/migration.sql", Reason: "is in a directory whose name is not <timestamp>_name: rename the directory"}
			}
			continue
		}
		if !has {
			return nil, &DirError{Dir: dirName, File: d, Reason: "is a Prisma migration directory without migration.sql: add it or remove the directory"}
		}
		v, err := parseVersion(dirName, d, m[1])
		if err != nil {
			return nil, err
		}
		out = append(out, layoutUnit{version: v, name: m[2], toolKey: d, up: d + "/migration.sql"})
	}
	return out, nil
}

// atlasUnits reads Atlas's layout: <version>[_name].sql files in
// lexicographic order, checked against atlas.sum the way Atlas checks it.
// "-- atlas:txmode none" runs a file outside a transaction; a custom
// "-- atlas:delimiter" is refused.
func atlasUnits(fsys fs.FS, dirName string) ([]layoutUnit, error) {
	files, _, err := topEntries(fsys, dirName)
	if err != nil {
		return nil, err
	}
	var sqls []string
	for _, f := range files {
		if strings.HasSuffix(f, ".sql") {
			sqls = append(sqls, f)
		}
	}
	sort.Strings(sqls)
	if err := verifyAtlasSum(fsys, dirName, sqls); err != nil {
		return nil, err
	}
	var out []layoutUnit
	for _, f := range sqls {
		base := strings.TrimSuffix(f, ".sql")
		ver, desc, _ := strings.Cut(base, "_")
		v, err := parseVersion(dirName, f, ver)
		if err != nil {
			return nil, err
		}
		out = append(out, layoutUnit{version: v, name: desc, toolKey: ver, up: f, split: atlasSplit})
	}
	return out, nil
}

// atlasSplit reads the file directives at the top of an Atlas file.
func atlasSplit(text string) (string, string, bool, bool, error) {
	noTx := false
	for i, line := range strings.Split(text, "\n") {
		t := strings.TrimSpace(line)
		if t == "" {
			continue
		}
		if !strings.HasPrefix(t, "--") {
			break
		}
		d := strings.TrimSpace(t[2:])
		switch {
		case strings.HasPrefix(d, "atlas:txmode"):
			switch strings.TrimSpace(strings.TrimPrefix(d, "atlas:txmode")) {
			case "none":
				noTx = true
			case "file", "all":
			default:
				return "", "", false, false, fmt.Errorf("line %d: unknown %q: shoal reads atlas:txmode none, file and all", i+1, d)
			}
		case strings.HasPrefix(d, "atlas:delimiter"):
			return "", "", false, false, fmt.Errorf("line %d: %q: shoal splits statements the way SQLite reads them (trigger bodies included) and reads no custom delimiter; remove the directive and end statements with ';' in a new migration", i+1, d)
		}
	}
	return text, "", false, noTx, nil
}

// AtlasSumFile is Atlas's checksum file in a migrations directory.
const AtlasSumFile = "atlas.sum"

// verifyAtlasSum checks atlas.sum as Atlas does: a running SHA-256 over each
// .sql file's name and bytes in lexicographic order (a file with an
// "atlas:sum ignore" directive adds its name only), one base64 hash per
// file, and a first line h1:<hash of the names and hashes>. A missing
// atlas.sum is not checked.
func verifyAtlasSum(fsys fs.FS, dirName string, sqls []string) error {
	data, err := fs.ReadFile(fsys, AtlasSumFile)
	if err != nil {
		return nil
	}
	fail := func(format string, args ...any) error {
		return &DirError{Dir: dirName, File: AtlasSumFile, Reason: fmt.Sprintf(format, args...) +
			": the migration files differ from what atlas.sum records; restore them, or if the change is intended run `atlas migrate hash`"}
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) == 0 || !strings.HasPrefix(lines[0], "h1:") {
		return fail("the first line is not h1:<sum>")
	}
	type entry struct{ n, h string }
	var rec []entry
	for _, l := range lines[1:] {
		n, h, ok := strings.Cut(l, "h1:")
		if !ok {
			return fail("line %q is not <file> h1:<hash>", l)
		}
		rec = append(rec, entry{strings.TrimSpace(n), h})
	}
	sumOf := func(es []entry) string {
		h := sha256.New()
		for _, e := range es {
			h.Write([]byte(e.n))
			h.Write([]byte(e.h))
		}
		return base64.StdEncoding.EncodeToString(h.Sum(nil))
	}
	if strings.TrimPrefix(lines[0], "h1:") != sumOf(rec) {
		return fail("its total line does not match its own file lines (edited by hand?)")
	}
	var got []entry
	h := sha256.New()
	for _, f := range sqls {
		b, err := fs.ReadFile(fsys, f)
		if err != nil {
			return &DirError{Dir: dirName, File: f, Reason: fmt.Sprintf("cannot be read (%v)", err)}
		}
		h.Write([]byte(f))
		if atlasSumIgnored(b) {
			continue
		}
		h.Write(b)
		got = append(got, entry{f, base64.StdEncoding.EncodeToString(h.Sum(nil))})
	}
	if sumOf(got) == sumOf(rec) {
		return nil
	}
	recBy := map[string]string{}
	for _, e := range rec {
		recBy[e.n] = e.h
	}
	for _, e := range got {
		h, ok := recBy[e.n]
		switch {
		case !ok:
			return fail("%s was added", e.n)
		case h != e.h:
			return fail("%s (or a file before it) was edited", e.n)
		}
		delete(recBy, e.n)
	}
	for n := range recBy {
		return fail("%s was removed", n)
	}
	return fail("the files are in another order")
}

// atlasSumIgnored reports an "atlas:sum ignore" file directive.
func atlasSumIgnored(b []byte) bool {
	for _, line := range strings.Split(string(b), "\n") {
		t := strings.TrimSpace(line)
		if t == "" {
			continue
		}
		if !strings.HasPrefix(t, "--") {
			return false
		}
		if strings.TrimSpace(t[2:]) == "atlas:sum ignore" {
			return true
		}
	}
	return false
}
