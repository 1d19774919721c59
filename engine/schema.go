package engine

import (
	"context"
	"database/sql"
	"errors"
	"io/fs"
	"os"
	"sort"
	"strings"
)

// SchemaObject is one user-visible schema object of a database.
type SchemaObject struct {
	Type  string `json:"type"`  // "table", "index", "view" or "trigger"
	Name  string `json:"name"`  // object name
	Table string `json:"table"` // the table it belongs to (tbl_name)
	SQL   string `json:"sql"`   // normalised CREATE statement, without ';'
}

// SchemaDiff is one difference between a wanted and a found schema.
type SchemaDiff struct {
	Type   string `json:"type"`
	Name   string `json:"name"`
	Change string `json:"change"` // "missing", "extra" or "different"
	Want   string `json:"want"`   // SQL wanted ("" when extra)
	Got    string `json:"got"`    // SQL found ("" when missing)
}

// Changes reported by DiffSchemas.
const (
	SchemaMissing   = "missing"
	SchemaExtra     = "extra"
	SchemaDifferent = "different"
)

var schemaTypeOrder = map[string]int{"table": 0, "index": 1, "view": 2, "trigger": 3}

// CanonicalSchema reads the user-visible schema of db: tables, indexes,
// views and triggers from sqlite_schema, without SQLite's internal objects
// (sqlite_%), automatic indexes (NULL sql) and shoal's own tables (shoal_%)
// with their indexes and triggers; each statement normalised by
// NormalizeSQL, sorted by type (table, index, view, trigger) then name.
func CanonicalSchema(ctx context.Context, db *sql.DB) ([]SchemaObject, error) {
	rows, err := db.QueryContext(ctx, `SELECT type, name, tbl_name, sql FROM sqlite_schema
		WHERE sql IS NOT NULL AND type IN ('table','index','view','trigger')
		AND name NOT LIKE 'sqlite\_%' ESCAPE '\' AND name NOT LIKE 'shoal\_%' ESCAPE '\'
		AND tbl_name NOT LIKE 'shoal\_%' ESCAPE '\'`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	objs := []SchemaObject{}
	for rows.Next() {
		var o SchemaObject
		if err := rows.Scan(&o.Type, &o.Name, &o.Table, &o.SQL); err != nil {
			return nil, err
		}
		o.SQL = NormalizeSQL(o.SQL)
		objs = append(objs, o)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	sortSchema(objs)
	return objs, nil
}

func sortSchema(objs []SchemaObject) {
	sort.SliceStable(objs, func(i, j int) bool { return schemaLess(objs[i].Type, objs[i].Name, objs[j].Type, objs[j].Name) })
}

func schemaLess(t1, n1, t2, n2 string) bool {
	if o1, o2 := schemaTypeOrder[t1], schemaTypeOrder[t2]; o1 != o2 {
		return o1 < o2
	}
	l1, l2 := strings.ToLower(n1), strings.ToLower(n2)
	if l1 != l2 {
		return l1 < l2
	}
	return n1 < n2
}

// SchemaSQL renders objects as runnable SQL: each statement ends with ';',
// objects are separated by a blank line. An empty schema renders as "".
func SchemaSQL(objs []SchemaObject) string {
	if len(objs) == 0 {
		return ""
	}
	var b strings.Builder
	for i, o := range objs {
		if i > 0 {
			b.WriteString("\n")
		}
		b.WriteString(o.SQL)
		b.WriteString(";\n")
	}
	return b.String()
}

// DiffSchemas compares a wanted schema with a found one object by object
// (objects are matched by type and case-insensitive name) and returns the
// differences sorted like the schema; an empty slice when they are equal.
func DiffSchemas(want, got []SchemaObject) []SchemaDiff {
	key := func(o SchemaObject) string { return o.Type + "\x00" + strings.ToLower(o.Name) }
	w := make(map[string]SchemaObject, len(want))
	for _, o := range want {
		w[key(o)] = o
	}
	g := make(map[string]SchemaObject, len(got))
	for _, o := range got {
		g[key(o)] = o
	}
	diffs := []SchemaDiff{}
	for k, a := range w {
		b, ok := g[k]
		switch {
		case !ok:
			diffs = append(diffs, SchemaDiff{Type: a.Type, Name: a.Name, Change: SchemaMissing, Want: a.SQL})
		case NormalizeSQL(a.SQL) != NormalizeSQL(b.SQL):
			diffs = append(diffs, SchemaDiff{Type: a.Type, Name: a.Name, Change: SchemaDifferent, Want: a.SQL, Got: b.SQL})
		}
	}
	for k, b := range g {
		if _, ok := w[k]; !ok {
			diffs = append(diffs, SchemaDiff{Type: b.Type, Name: b.Name, Change: SchemaExtra, Got: b.SQL})
		}
	}
	sort.SliceStable(diffs, func(i, j int) bool {
		return schemaLess(diffs[i].Type, diffs[i].Name, diffs[j].Type, diffs[j].Name)
	})
	return diffs
}

// DBSchema opens the database at path read-only (never creating it) and
// returns its canonical schema. A missing file is ErrNotFound, a file that
// is not a SQLite database ErrCorrupt (both as *Error).
func DBSchema(ctx context.Context, path string) ([]SchemaObject, error) {
	st, err := os.Stat(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, &Error{Path: path, Kind: ErrNotFound, Hint: "check the path"}
		}
		return nil, &Error{Path: path, Kind: ErrNotFound, Detail: "cannot stat the file", Err: err, Hint: "check the path and its permissions"}
	}
	if !st.Mode().IsRegular() {
		return nil, &Error{Path: path, Kind: ErrCorrupt, Detail: "not a regular file", Hint: "give the path of a SQLite database file"}
	}
	db, err := sql.Open("sqlite", safetyDSN(path, "mode=ro&_pragma=busy_timeout(30000)"))
	if err != nil {
		return nil, &Error{Path: path, Kind: ErrCorrupt, Detail: "cannot open", Err: err}
	}
	defer db.Close()
	objs, err := CanonicalSchema(ctx, db)
	if err != nil {
		if isNotADB(err) {
			return nil, &Error{Path: path, Kind: ErrCorrupt, Detail: "cannot read the schema", Err: err, Hint: "check the file is a SQLite database; restore it from a backup"}
		}
		return nil, &Error{Path: path, Kind: ErrMigration, Detail: "cannot read the schema", Err: err, Hint: "check the file and its permissions"}
	}
	return objs, nil
}

// NormalizeSQL puts one statement in canonical form: comments dropped,
// runs of whitespace outside string literals and quoted identifiers
// collapsed to one space, no space next to '(', ')' or ',', leading and
// trailing whitespace and trailing ';' dropped. Case is kept.
func NormalizeSQL(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	pendingSpace := false
	emit := func(r string) {
		if pendingSpace && b.Len() > 0 {
			last := b.String()[b.Len()-1]
			if !isTight(last) && !isTight(r[0]) {
				b.WriteByte(' ')
			}
		}
		pendingSpace = false
		b.WriteString(r)
	}
	n := len(s)
	for i := 0; i < n; {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v':
			pendingSpace = true
			i++
		case c == '-' && i+1 < n && s[i+1] == '-':
			for i < n && s[i] != '\n' {
				i++
			}
			pendingSpace = true
		case c == '/' && i+1 < n && s[i+1] == '*':
			j := strings.Index(s[i+2:], "*/")
			if j < 0 {
				i = n
			} else {
				i += 2 + j + 2
			}
			pendingSpace = true
		case c == '\'' || c == '"' || c == '`':
			j := i + 1
			for j < n {
				if s[j] == c {
					if j+1 < n && s[j+1] == c { // doubled quote
						j += 2
						continue
					}
					break
				}
				j++
			}
			end := min(j+1, n)
			emit(s[i:end])
			i = end
		case c == '[':
			j := strings.IndexByte(s[i:], ']')
			end := n
			if j >= 0 {
				end = i + j + 1
			}
			emit(s[i:end])
			i = end
		default:
			emit(s[i : i+1])
			i++
		}
	}
	// No whitespace is ever emitted first or last (outside a literal).
	out := b.String()
	for strings.HasSuffix(out, ";") {
		out = strings.TrimRight(strings.TrimSuffix(out, ";"), " ")
	}
	return out
}

// isTight: no space is needed next to these characters.
func isTight(c byte) bool { return c == '(' || c == ')' || c == ',' }

// DescribeDiffs summarises schema differences on one line:
// "different table users, missing index notes_user".
func DescribeDiffs(d []SchemaDiff) string {
	parts := make([]string, 0, len(d))
	for _, x := range d {
		parts = append(parts, x.Change+" "+x.Type+" "+x.Name)
	}
	return strings.Join(parts, ", ")
}
