package engine

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

// OpenDir checks that path is an existing, readable directory and returns it
// as an fs.FS for Options.Dir. A missing path, or one that is a file, is a
// *DirError (wrapping ErrInvalidDir) naming it and saying what to do.
func OpenDir(path string) (fs.FS, error) {
	if path == "" {
		return nil, &DirError{Dir: `""`, Reason: "no directory given: pass the migrations directory with --dir"}
	}
	st, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, &DirError{Dir: path, Reason: "does not exist: create it (`shoal init`) or pass the right directory with --dir"}
	case err != nil:
		return nil, &DirError{Dir: path, Reason: fmt.Sprintf("cannot be read (%v): check the path and its permissions", err)}
	case !st.IsDir():
		return nil, &DirError{Dir: path, Reason: "is a file, not a directory: pass the directory that holds the migration files"}
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, &DirError{Dir: path, Reason: fmt.Sprintf("cannot be read (%v): check its permissions", err)}
	}
	f.Close()
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, &DirError{Dir: path, Reason: fmt.Sprintf("cannot be resolved (%v)", err)}
	}
	return diskDir{FS: os.DirFS(abs), dir: abs}, nil
}

// diskDir is an OS directory as an fs.FS that remembers its absolute path,
// so that script migrations run in place (Options.DirPath).
type diskDir struct {
	fs.FS
	dir string
}

func (d diskDir) ReadFile(name string) ([]byte, error)       { return fs.ReadFile(d.FS, name) }
func (d diskDir) ReadDir(name string) ([]fs.DirEntry, error) { return fs.ReadDir(d.FS, name) }
func (d diskDir) Stat(name string) (fs.FileInfo, error)      { return fs.Stat(d.FS, name) }

// scriptInterpreters maps script extensions to the program that runs them
// (fastmigrate's convention: `sh FILE DB_PATH`, `python3 FILE DB_PATH`).
var scriptInterpreters = map[string]string{".sh": "sh", ".py": "python3"}

// loadMigrations reads the migrations at the top level of fsys (dirName
// names it in messages; subdirectories are ignored), merges the Go
// migrations and returns them sorted by version. Every problem is a
// *DirError naming the file(s) and saying what to do: a file name that
// starts with a digit but does not parse, a file that is not valid UTF-8, a
// .sql file with a NUL byte, a syntax error or bad section markers, two
// migrations with the same version, a Go migration without Up. A nil fsys or
// an empty directory has no migrations.
func loadMigrations(fsys fs.FS, dirName string, gos []GoMigration) ([]Migration, error) {
	files := []Migration{}
	var unversioned []string

	if fsys != nil {
		entries, err := fs.ReadDir(fsys, ".")
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil, &DirError{Dir: dirName, Reason: "does not exist: create it (`shoal init`) or pass the right directory with --dir"}
			}
			return nil, &DirError{Dir: dirName, Reason: fmt.Sprintf("cannot be read (%v): check its permissions", err)}
		}
		for _, e := range entries {
			name := e.Name()
			if unversionedName(name) {
				if skip, _ := skipEntry(fsys, dirName, e); !skip {
					unversioned = append(unversioned, name)
				}
				continue
			}
			if ignoredName(name) {
				continue
			}
			skip, err := skipEntry(fsys, dirName, e)
			if err != nil {
				return nil, err
			}
			if skip {
				continue
			}
			n, ok, err := ParseName(name)
			if err != nil {
				return nil, &DirError{Dir: dirName, File: name, Reason: err.Error()}
			}
			if !ok {
				continue
			}
			m, err := readMigrationFile(fsys, dirName, name, n)
			if err != nil {
				return nil, err
			}
			files = append(files, m)
		}
	}
	out, err := mergeMigrations(dirName, false, files, gos)
	if err != nil {
		return nil, err
	}
	if len(unversioned) > 0 {
		return nil, unversionedError(dirName, unversioned, out)
	}
	return out, nil
}

// unversionedName reports a .sql, .sh or .py file that is not a migration
// by its name (no leading version) and not one of the files shoal ignores:
// it would never be applied, so it is refused rather than skipped.
func unversionedName(name string) bool {
	if name == "" || name[0] == '.' || (name[0] >= '0' && name[0] <= '9') {
		return false
	}
	if len(name) >= 6 && strings.EqualFold(name[:6], "readme") || name == "schema.sql" || name == SumFile {
		return false
	}
	dot := strings.LastIndexByte(name, '.')
	return dot > 0 && isMigrationExt(strings.ToLower(name[dot:]))
}

// unversionedError names the files without a version and the name each
// would get as the next migration.
func unversionedError(dirName string, files []string, ms []Migration) error {
	sort.Strings(files)
	width, next := 4, int64(1)
	for _, m := range ms {
		if m.Version >= next {
			next = m.Version + 1
		}
		if m.Kind != KindGo {
			if n, ok, err := ParseName(m.File); err == nil && ok {
				width = n.Width
			}
		}
	}
	var renames []string
	for i, f := range files {
		dot := strings.LastIndexByte(f, '.')
		desc := strings.Trim(strings.Map(func(r rune) rune {
			if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
				return r
			}
			return '_'
		}, f[:dot]), "_")
		if desc == "" {
			desc = "change"
		}
		renames = append(renames, fmt.Sprintf("%s -> %0*d_%s%s", f, width, next+int64(i), desc, strings.ToLower(f[dot:])))
	}
	what := "has no version"
	if len(files) > 1 {
		what = "have no version"
	}
	return &DirError{Dir: dirName, File: strings.Join(files, ", "), Kind: ErrUnversioned,
		Reason: fmt.Sprintf("%s, so shoal would never apply it: rename it with the next version (%s), "+
			"or move it out of the directory (helper files may live in a subdirectory, which shoal does not read); %s",
			what, strings.Join(renames, ", "), nameHint)}
}

// mergeMigrations adds the Go migrations to the migrations read from files,
// refuses two migrations with one version (in any layout, the same error
// kind), and sorts them by version.
func mergeMigrations(dirName string, foreign bool, files []Migration, gos []GoMigration) ([]Migration, error) {
	out := files
	byVersion := make(map[int64]string, len(files)+len(gos)) // version -> file
	for _, g := range gos {
		m, err := goMigration(dirName, g)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	for _, m := range out {
		if other, dup := byVersion[m.Version]; dup {
			return nil, duplicateError(dirName, other, m.File, m.Version, foreign)
		}
		byVersion[m.Version] = m.File
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	return out, nil
}

// duplicateError names two migrations with one version: two branches that
// each added a migration are what `shoal renumber` untangles. (A
// golang-migrate .up.sql/.down.sql pair never gets here: such a directory
// is read in its own layout.)
// In another tool's layout `shoal renumber` does not apply.
func duplicateError(dirName, a, b string, v int64, foreign bool) error {
	reason := fmt.Sprintf("both have version %d: rename one of them so that every version is used once", v)
	if !foreign {
		reason += " (two branches added the same version? `shoal renumber` moves the newer one above the others)"
	}
	return &DirError{Dir: dirName, File: a, Other: b, Kind: ErrDuplicateVersion, Reason: reason}
}

// skipEntry reports directory entries to skip (directories, also behind a
// symlink) and refuses special files (reading a FIFO would block).
func skipEntry(fsys fs.FS, dirName string, e fs.DirEntry) (bool, error) {
	mode := e.Type()
	if mode&fs.ModeSymlink != 0 {
		st, err := fs.Stat(fsys, e.Name())
		if err != nil {
			return false, &DirError{Dir: dirName, File: e.Name(), Reason: fmt.Sprintf("cannot be read (%v): fix or remove the link", err)}
		}
		mode = st.Mode().Type()
	}
	switch {
	case mode.IsDir():
		return true, nil
	case !mode.IsRegular():
		return false, &DirError{Dir: dirName, File: e.Name(), Reason: "is not a regular file: remove it, or rename it so that it does not start with a digit"}
	}
	return false, nil
}

// readMigrationFile reads and parses one migration file.
func readMigrationFile(fsys fs.FS, dirName, name string, n MigrationName) (Migration, error) {
	fail := func(format string, args ...any) (Migration, error) {
		return Migration{}, &DirError{Dir: dirName, File: name, Reason: fmt.Sprintf(format, args...)}
	}
	data, err := fs.ReadFile(fsys, name)
	if err != nil {
		return fail("cannot be read (%v): check its permissions", err)
	}
	interp, isScript := scriptInterpreters[n.Ext]
	if err := checkText(dirName, name, data, isScript); err != nil {
		return Migration{}, err
	}
	m := Migration{
		Version:  n.Version,
		Name:     n.Description,
		File:     name,
		Checksum: Checksum(data),
	}
	if isScript {
		m.Kind = KindScript
		m.Script = data
		m.Interpreter = interp
		return m, nil
	}
	if err := parseSQLMigration(dirName, &m, string(normalizeText(data))); err != nil {
		return Migration{}, err
	}
	return m, nil
}

// invalidUTF8At returns the 1-based line and byte-in-line of the first byte
// of data that is not valid UTF-8.
func invalidUTF8At(data []byte) (line, col int) {
	line, lineStart := 1, 0
	for i := 0; i < len(data); {
		r, size := utf8.DecodeRune(data[i:])
		if r == utf8.RuneError && size <= 1 {
			return line, i - lineStart + 1
		}
		if r == '\n' {
			line, lineStart = line+1, i+1
		}
		i += size
	}
	return line, len(data) - lineStart + 1
}

// goMigration turns a registered Go migration into a Migration.
func goMigration(dirName string, g GoMigration) (Migration, error) {
	file := "go:" + strconv.FormatInt(g.Version, 10) + "_" + g.Name
	fail := func(reason string) (Migration, error) {
		return Migration{}, &DirError{Dir: dirName, File: file, Reason: reason}
	}
	switch {
	case g.Version <= 0:
		return fail(fmt.Sprintf("Go migration has version %d: versions start at 1; register it with a positive Version", g.Version))
	case g.Name == "":
		return fail("Go migration has no Name: give it a short description, like a file name's (\"backfill_emails\")")
	case g.Up == nil:
		return fail("Go migration has no Up function: set Up (Down is optional)")
	}
	gm := g
	return Migration{
		Version:  g.Version,
		Name:     g.Name,
		File:     file,
		Kind:     KindGo,
		HasDown:  g.Down != nil,
		Checksum: goChecksum(g.Version, g.Name),
		Go:       &gm,
	}, nil
}
