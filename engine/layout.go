package engine

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Layouts: how a migrations directory names and splits its migrations.
// shoal reads other tools' directories as they are, without renaming or
// editing a file (docs/switching.md).
const (
	// LayoutShoal is shoal's own layout, which is also dbmate's
	// (-- migrate:up/down), fastmigrate's (0001-name.sql/.sh/.py) and
	// Rails-style numbered .sql files.
	LayoutShoal = "shoal"
	// LayoutGolangMigrate: N_name.up.sql + N_name.down.sql.
	LayoutGolangMigrate = "golang-migrate"
	// LayoutGoose: N_name.sql with -- +goose Up / Down annotations.
	LayoutGoose = "goose"
	// LayoutDiesel: YYYY-MM-DD-HHMMSS_name/up.sql + down.sql.
	LayoutDiesel = "diesel"
	// LayoutSqlx: N_name.sql, or N_name.up.sql + N_name.down.sql; a file
	// starting with "-- no-transaction" runs outside a transaction.
	LayoutSqlx = "sqlx"
	// LayoutFlyway: V1__name.sql, V1_1__name.sql, U1__name.sql (undo).
	LayoutFlyway = "flyway"
	// LayoutRefinery: V1__name.sql and U1__name.sql (U: unversioned, an up
	// migration that may be applied out of order under refinery).
	LayoutRefinery = "refinery"
	// LayoutPrisma: <timestamp>_name/migration.sql with migration_lock.toml.
	LayoutPrisma = "prisma"
	// LayoutAtlas: versioned .sql files with atlas.sum.
	LayoutAtlas = "atlas"
)

// layoutAliases are other names accepted by --layout.
var layoutAliases = map[string]string{
	"dbmate":      LayoutShoal,
	"fastmigrate": LayoutShoal,
	"rails":       LayoutShoal,
	"native":      LayoutShoal,
	"migrate":     LayoutGolangMigrate,
}

// Layouts lists the layout names --layout accepts (aliases included).
func Layouts() []string {
	out := []string{LayoutShoal, LayoutGolangMigrate, LayoutGoose, LayoutDiesel, LayoutSqlx, LayoutFlyway,
		LayoutRefinery, LayoutPrisma, LayoutAtlas}
	for a := range layoutAliases {
		out = append(out, a)
	}
	sort.Strings(out[9:])
	return out
}

// NormalizeLayout returns the canonical name of a layout name given by a
// user ("" stays ""), or an error listing the names.
func NormalizeLayout(name string) (string, error) {
	n := strings.ToLower(strings.TrimSpace(name))
	if n == "" {
		return "", nil
	}
	if a, ok := layoutAliases[n]; ok {
		return a, nil
	}
	for _, l := range Layouts() {
		if l == n {
			return n, nil
		}
	}
	return "", fmt.Errorf("unknown layout %q: use one of %s", name, strings.Join(Layouts(), ", "))
}

// File classes found by detection. A directory holds the files of one
// layout; the classes each layout reads are in layoutReads.
const (
	classPlain  = "plain numbered .sql"
	classDbmate = "shoal/dbmate (-- migrate:up)"
	classScript = "fastmigrate script (.sh/.py)"
	classGoose  = "goose (-- +goose annotations)"
	classPair   = "golang-migrate/sqlx (.up.sql/.down.sql)"
	classDiesel = "diesel (directory with up.sql)"
	classPrisma = "prisma (directory with migration.sql)"
	classFlyway = "flyway/refinery (V1__name.sql)"
	classAtlas  = "atlas (atlas.sum)"
)

var layoutReads = map[string][]string{
	LayoutShoal:         {classPlain, classDbmate, classScript},
	LayoutGolangMigrate: {classPair},
	LayoutSqlx:          {classPlain, classPair},
	LayoutGoose:         {classGoose},
	LayoutDiesel:        {classDiesel},
	LayoutPrisma:        {classPrisma},
	LayoutFlyway:        {classFlyway},
	LayoutRefinery:      {classFlyway},
	LayoutAtlas:         {classAtlas, classPlain},
}

var (
	rePair     = regexp.MustCompile(`^([0-9]+)_(.*)\.(up|down)\.sql$`)
	reNumbered = regexp.MustCompile(`^[0-9]+[_-].*\.(sql|sh|py|go)$`)
	reDiesel   = regexp.MustCompile(`^([0-9]{4}-[0-9]{2}-[0-9]{2}-[0-9]{6}|[0-9]+)_(.+)$`)
	rePrisma   = regexp.MustCompile(`^([0-9]+)_(.+)$`)
	reFlyway   = regexp.MustCompile(`^([VURB])([^_]*(?:_[^_]+)*?)__(.+)\.sql(\.conf)?$`)
)

// dirLayout is the layout of a directory and what it found on the way.
type dirLayout struct {
	name     string
	examples map[string]string // class -> one file of that class
}

// detectLayout reads the top level of fsys and returns its layout. forced
// (canonical, from --layout) skips the guess but is still checked against
// the files: forcing a layout onto files of another would run them wrong
// (a goose file read as plain SQL runs its down section). A directory whose
// files belong to two layouts is refused with one file of each.
func detectLayout(fsys fs.FS, dirName, forced string) (*dirLayout, error) {
	dl := &dirLayout{name: LayoutShoal, examples: map[string]string{}}
	if fsys == nil {
		if forced != "" {
			dl.name = forced
		}
		return dl, nil
	}
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		if forced != "" {
			dl.name = forced
		}
		return dl, nil // loading reports it, in the words of each layout
	}
	sqlxNoTx := ""
	note := func(class, file string) {
		if _, ok := dl.examples[class]; !ok {
			dl.examples[class] = file
		}
	}
	for _, e := range entries {
		name := e.Name()
		if name == "" || name[0] == '.' || strings.HasPrefix(strings.ToLower(name), "readme") {
			continue
		}
		isDir := e.IsDir()
		if e.Type()&fs.ModeSymlink != 0 {
			if st, err := fs.Stat(fsys, name); err == nil {
				isDir = st.IsDir()
			}
		}
		switch {
		case isDir:
			if reDiesel.MatchString(name) && fileExists(fsys, name+"/up.sql") {
				note(classDiesel, name+"/up.sql")
			} else if rePrisma.MatchString(name) && fileExists(fsys, name+"/migration.sql") {
				note(classPrisma, name+"/migration.sql")
			}
		case name == "atlas.sum":
			note(classAtlas, name)
		case name == "migration_lock.toml":
			note(classPrisma, name)
		case reFlyway.MatchString(name):
			note(classFlyway, name)
		case rePair.MatchString(name):
			note(classPair, name)
			if sqlxNoTx == "" && hasSqlxNoTx(fsys, name) {
				sqlxNoTx = name
			}
		case reNumbered.MatchString(name):
			switch path.Ext(name) {
			case ".sh", ".py":
				note(classScript, name)
			case ".go":
				note(classGoose, name)
			default:
				data, _ := fs.ReadFile(fsys, name)
				switch {
				case hasGooseAnnotation(data):
					note(classGoose, name)
				case hasDbmateMarker(data):
					note(classDbmate, name)
				default:
					note(classPlain, name)
					if sqlxNoTx == "" && bytes.HasPrefix(normalizeText(data), []byte(sqlxNoTxDirective)) {
						sqlxNoTx = name
					}
				}
			}
		}
	}
	if forced != "" {
		dl.name = forced
		allowed := map[string]bool{}
		for _, c := range layoutReads[forced] {
			allowed[c] = true
		}
		for class, file := range dl.examples {
			if !allowed[class] {
				return nil, &DirError{Dir: dirName, File: file, Reason: fmt.Sprintf(
					"--layout %s was given, but this is a %s file, which the %s layout does not read: pass the layout the directory is written in, or leave --layout out to detect it",
					forced, class, forced)}
			}
		}
		return dl, nil
	}
	has := func(c string) bool { _, ok := dl.examples[c]; return ok }
	fits := func(layout string) bool {
		allowed := map[string]bool{}
		for _, c := range layoutReads[layout] {
			allowed[c] = true
		}
		for c := range dl.examples {
			if !allowed[c] {
				return false
			}
		}
		return true
	}
	// Candidates in order of preference: the first that reads every class
	// found wins; a layout is a candidate only when its own mark is there.
	switch {
	case len(dl.examples) == 0:
		return dl, nil
	case has(classAtlas) && fits(LayoutAtlas):
		dl.name = LayoutAtlas
	case has(classGoose) && fits(LayoutGoose):
		dl.name = LayoutGoose
	case has(classDiesel) && fits(LayoutDiesel):
		dl.name = LayoutDiesel
	case has(classPrisma) && fits(LayoutPrisma):
		dl.name = LayoutPrisma
	case has(classFlyway) && fits(LayoutFlyway):
		dl.name = flywayOrRefinery(fsys)
	case has(classPair) && fits(LayoutGolangMigrate):
		dl.name = LayoutGolangMigrate
		if sqlxNoTx != "" {
			dl.name = LayoutSqlx
		}
	case fits(LayoutShoal):
		dl.name = LayoutShoal
		if sqlxNoTx != "" && !has(classDbmate) && !has(classScript) {
			dl.name = LayoutSqlx
		}
	default:
		return nil, mixedLayoutError(dirName, dl.examples)
	}
	return dl, nil
}

// mixedLayoutError refuses a directory with files of several layouts,
// naming one file of each.
func mixedLayoutError(dirName string, examples map[string]string) error {
	var parts []string
	for class, file := range examples {
		parts = append(parts, fmt.Sprintf("%s (%s)", file, class))
	}
	sort.Strings(parts)
	return &DirError{Dir: dirName, Reason: "mixes the layouts of several migration tools: " + strings.Join(parts, ", ") +
		": a directory holds one tool's layout; move the files of the other out (or convert them), or force the layout with --layout NAME"}
}

func fileExists(fsys fs.FS, name string) bool {
	st, err := fs.Stat(fsys, name)
	return err == nil && st.Mode().IsRegular()
}

// hasGooseAnnotation reports a line that is a goose annotation
// ("-- +goose ...").
func hasGooseAnnotation(data []byte) bool {
	for _, line := range strings.Split(string(normalizeText(data)), "\n") {
		if isGooseAnnotation(line) {
			return true
		}
	}
	return false
}

func isGooseAnnotation(line string) bool {
	t := strings.TrimSpace(line)
	return strings.HasPrefix(t, "--") && strings.Contains(t, "+goose")
}

// hasDbmateMarker reports a line starting with "-- migrate:".
func hasDbmateMarker(data []byte) bool {
	for _, line := range strings.Split(string(normalizeText(data)), "\n") {
		t := strings.TrimSpace(line)
		if strings.HasPrefix(t, "--") && strings.HasPrefix(strings.TrimSpace(t[2:]), "migrate:") {
			return true
		}
	}
	return false
}

const sqlxNoTxDirective = "-- no-transaction"

func hasSqlxNoTx(fsys fs.FS, name string) bool {
	data, err := fs.ReadFile(fsys, name)
	return err == nil && bytes.HasPrefix(normalizeText(data), []byte(sqlxNoTxDirective))
}

// layoutUnit is one migration of a foreign layout before it is parsed.
type layoutUnit struct {
	version int64
	name    string // description
	toolKey string // the version as the tool records it
	up      string // path of the up file (also Migration.File)
	down    string // path of the down file, "" when none
	extra   []string
	// upNoTx / downNoTx: run outside a transaction.
	upNoTx, downNoTx bool
	// split turns the normalised text of the up file into the up and down
	// texts (same length, other lines blanked, so lines keep their
	// numbers) and reports a no-transaction directive found in it. nil:
	// the whole file is the up part.
	split func(text string) (up, down string, hasDown, noTx bool, err error)
	// allowEmpty: an up part without statements is accepted (diesel's
	// initial setup migration).
	allowEmpty bool
}

// loadLayout reads the migrations of a directory in a foreign layout.
func loadLayout(fsys fs.FS, dirName string, dl *dirLayout, gos []GoMigration) ([]Migration, error) {
	var units []layoutUnit
	var err error
	switch dl.name {
	case LayoutGolangMigrate, LayoutSqlx:
		units, err = pairUnits(fsys, dirName, dl.name)
	case LayoutGoose:
		units, err = gooseUnits(fsys, dirName)
	case LayoutDiesel:
		units, err = dieselUnits(fsys, dirName)
	case LayoutFlyway, LayoutRefinery:
		units, err = flywayUnits(fsys, dirName, dl.name)
	case LayoutPrisma:
		units, err = prismaUnits(fsys, dirName)
	case LayoutAtlas:
		units, err = atlasUnits(fsys, dirName)
	default:
		return nil, &DirError{Dir: dirName, Reason: fmt.Sprintf("layout %q cannot be read", dl.name)}
	}
	if err != nil {
		return nil, err
	}
	files := make([]Migration, 0, len(units))
	for _, u := range units {
		m, err := readLayoutUnit(fsys, dirName, dl.name, u)
		if err != nil {
			return nil, err
		}
		files = append(files, m)
	}
	return mergeMigrations(dirName, true, files, gos)
}

// readLayoutFile reads one file of a migration: valid UTF-8, no NUL byte.
func readLayoutFile(fsys fs.FS, dirName, name string) ([]byte, error) {
	fail := func(format string, args ...any) ([]byte, error) {
		return nil, &DirError{Dir: dirName, File: name, Reason: fmt.Sprintf(format, args...)}
	}
	if st, err := fs.Stat(fsys, name); err != nil {
		return fail("cannot be read (%v): check its permissions", err)
	} else if !st.Mode().IsRegular() {
		return fail("is not a regular file: replace it with the migration file")
	}
	data, err := fs.ReadFile(fsys, name)
	if err != nil {
		return fail("cannot be read (%v): check its permissions", err)
	}
	if err := checkText(dirName, name, data, false); err != nil {
		return nil, err
	}
	return data, nil
}

// checkText refuses migration text that is not valid UTF-8 or (unless
// nulOK, for scripts) holds a NUL byte, which SQLite would take for the end
// of the text.
func checkText(dirName, name string, data []byte, nulOK bool) error {
	if !utf8.Valid(data) {
		line, col := invalidUTF8At(data)
		return &DirError{Dir: dirName, File: name, Reason: fmt.Sprintf("is not valid UTF-8 (line %d, byte %d of the line): save it as UTF-8", line, col)}
	}
	if i := bytes.IndexByte(data, 0); i >= 0 && !nulOK {
		return &DirError{Dir: dirName, File: name, Reason: fmt.Sprintf("line %d: contains a NUL byte, which SQLite would take for the end of the text: remove it (is this a binary file?)", 1+bytes.Count(data[:i], []byte("\n")))}
	}
	return nil
}

// readLayoutUnit reads and parses one migration of a foreign layout. Its
// checksum is shoal's usual one over the up file's bytes (CRLF and BOM
// normalised); down files are not part of it (the sum file covers them).
func readLayoutUnit(fsys fs.FS, dirName, layout string, u layoutUnit) (Migration, error) {
	m := Migration{Version: u.version, Name: u.name, File: u.up, ToolVersion: u.toolKey, Kind: KindSQL}
	m.Files = append(m.Files, u.up)
	data, err := readLayoutFile(fsys, dirName, u.up)
	if err != nil {
		return Migration{}, err
	}
	m.Checksum = Checksum(data)
	text := string(normalizeText(data))
	wrap := func(file string, err error) error {
		var se *syntaxError
		if errors.As(err, &se) {
			return &DirError{Dir: dirName, File: file, Reason: fmt.Sprintf("line %d: %s", se.Line, se.Msg)}
		}
		var de *DirError
		if errors.As(err, &de) {
			return err
		}
		return &DirError{Dir: dirName, File: file, Reason: err.Error()}
	}
	upText, downText, hasDown, noTx := text, "", false, false
	if u.split != nil {
		if upText, downText, hasDown, noTx, err = u.split(text); err != nil {
			return Migration{}, wrap(u.up, err)
		}
	}
	if m.Up, err = splitSQL(upText, 1); err != nil {
		return Migration{}, wrap(u.up, err)
	}
	m.UpNoTx = u.upNoTx || noTx
	if hasDown {
		if m.Down, err = splitSQL(downText, 1); err != nil {
			return Migration{}, wrap(u.up, err)
		}
		m.DownNoTx = u.downNoTx || noTx
	}
	if u.down != "" {
		dd, err := readLayoutFile(fsys, dirName, u.down)
		if err != nil {
			return Migration{}, err
		}
		dtext := string(normalizeText(dd))
		dnoTx := false
		if u.split != nil {
			// The down file of a pair carries its own directives (sqlx's
			// "-- no-transaction").
			var err error
			if dtext, _, _, dnoTx, err = u.split(dtext); err != nil {
				return Migration{}, wrap(u.down, err)
			}
		}
		if m.Down, err = splitSQL(dtext, 1); err != nil {
			return Migration{}, wrap(u.down, err)
		}
		hasDown = true
		m.DownNoTx = u.downNoTx || dnoTx
		m.Files = append(m.Files, u.down)
	}
	if hasDown && m.Down == nil {
		m.Down = []Statement{}
	}
	m.HasDown = hasDown
	m.Files = append(m.Files, u.extra...)
	if m.UpNoTx {
		m.Kind = KindSQLNoTx
	}
	if len(m.Up) == 0 && !u.allowEmpty {
		return Migration{}, &DirError{Dir: dirName, File: u.up, Reason: "has no SQL statement to run: an empty migration records a version that changes nothing; add its statements or remove the file"}
	}
	if err := checkLayoutStatements(dirName, layout, &m); err != nil {
		return Migration{}, err
	}
	return m, nil
}

// layoutNoTxHint says, per layout, how that tool's files run a migration
// outside a transaction.
var layoutNoTxHint = map[string]string{
	LayoutGoose:         "add \"-- +goose NO TRANSACTION\" to the file",
	LayoutSqlx:          "start the file with \"-- no-transaction\"",
	LayoutDiesel:        "add metadata.toml with run_in_transaction = false beside it",
	LayoutFlyway:        "add <file>.conf with executeInTransaction=false",
	LayoutAtlas:         "start the file with \"-- atlas:txmode none\"",
	LayoutGolangMigrate: "golang-migrate's layout has no way to; write it as a shoal migration (-- migrate:up transaction:false) in a directory of shoal's layout",
	LayoutRefinery:      "refinery's layout has no way to; write it as a shoal migration (-- migrate:up transaction:false) in a directory of shoal's layout",
	LayoutPrisma:        "Prisma's layout has no way to; write it as a shoal migration (-- migrate:up transaction:false) in a directory of shoal's layout",
}

// checkLayoutStatements applies the rules of shoal's own layout to a
// migration read from another tool's files: no transaction control in a
// section that runs inside shoal's transaction (checkTxControl), with the
// tool's own way of running a migration outside one as the hint.
func checkLayoutStatements(dirName, layout string, m *Migration) error {
	err := checkTxControl(dirName, m)
	var de *DirError
	if errors.As(err, &de) {
		if i := strings.Index(de.Reason, ", or mark the section"); i >= 0 {
			de.Reason = de.Reason[:i] + ", or run it outside a transaction: " + layoutNoTxHint[layout]
		}
	}
	return err
}

// parseVersion reads a version made of digits (>= 1).
func parseVersion(dirName, file, digits string) (int64, error) {
	v, err := strconv.ParseInt(digits, 10, 64)
	switch {
	case err != nil:
		return 0, &DirError{Dir: dirName, File: file, Reason: fmt.Sprintf("version %q is not a number shoal can order (at most %d): rename it", digits, int64(1<<63-1))}
	case v <= 0:
		return 0, &DirError{Dir: dirName, File: file, Reason: "version 0 is invalid (versions start at 1; 0 is an empty database): rename it"}
	}
	return v, nil
}

// ignoredLayoutName: files every layout ignores.
func ignoredLayoutName(name string) bool {
	return name == "" || name[0] == '.' || len(name) >= 6 && strings.EqualFold(name[:6], "readme") ||
		name == "schema.sql" || name == SumFile
}

// topFiles lists the regular files (also behind symlinks) and directories
// at the top of fsys, without the ones every layout ignores.
func topEntries(fsys fs.FS, dirName string) (files, dirs []string, err error) {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil, &DirError{Dir: dirName, Reason: "does not exist: create it (`shoal init`) or pass the right directory with --dir"}
		}
		return nil, nil, &DirError{Dir: dirName, Reason: fmt.Sprintf("cannot be read (%v): check its permissions", err)}
	}
	for _, e := range entries {
		name := e.Name()
		if ignoredLayoutName(name) {
			continue
		}
		mode := e.Type()
		if mode&fs.ModeSymlink != 0 {
			st, err := fs.Stat(fsys, name)
			if err != nil {
				return nil, nil, &DirError{Dir: dirName, File: name, Reason: fmt.Sprintf("cannot be read (%v): fix or remove the link", err)}
			}
			mode = st.Mode().Type()
		}
		switch {
		case mode.IsDir():
			dirs = append(dirs, name)
		case mode.IsRegular():
			files = append(files, name)
		default:
			return nil, nil, &DirError{Dir: dirName, File: name, Reason: "is not a regular file: remove it"}
		}
	}
	return files, dirs, nil
}

// blankOutside returns text with every line outside [from, to) (0-based
// line numbers) replaced by an empty line, so statement lines keep their
// numbers in the file.
func blankOutside(lines []string, keep func(i int) bool) string {
	var b strings.Builder
	for i, l := range lines {
		if i > 0 {
			b.WriteByte('\n')
		}
		if keep(i) {
			b.WriteString(l)
		}
	}
	return b.String()
}

// LayoutFiles lists every file that belongs to the migrations of a
// directory in a foreign layout (up, down and side files such as Flyway's
// .sql.conf), for the sum file. For shoal's own layout it returns nil.
func LayoutFiles(fsys fs.FS, layout string) ([]string, string, error) {
	name, err := NormalizeLayout(layout)
	if err != nil {
		return nil, "", err
	}
	dl, err := detectLayout(fsys, "(migrations)", name)
	if err != nil {
		return nil, "", err
	}
	if dl.name == LayoutShoal {
		return nil, dl.name, nil
	}
	ms, err := loadLayout(fsys, "(migrations)", dl, nil)
	if err != nil {
		return nil, dl.name, err
	}
	var out []string
	for _, m := range ms {
		out = append(out, m.Files...)
	}
	return out, dl.name, nil
}

// readLayout finds the layout of the engine's directory (Options.Layout
// forces it).
func readLayout(o Options) (*dirLayout, error) {
	forced, err := NormalizeLayout(o.Layout)
	if err != nil {
		return nil, &DirError{Dir: o.DirName, Reason: err.Error()}
	}
	return detectLayout(o.Dir, o.DirName, forced)
}

// Layout names the layout the engine read its directory in (LayoutShoal,
// LayoutGoose, ...).
func (e *Engine) Layout() string { return e.layout }
