package schema

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/shoal-dev/shoal/engine"
)

// RebuildTable changes a table in a way ALTER TABLE cannot, with the
// 12-step procedure of SQLite's documentation (https://sqlite.org/lang_altertable.html#otheralter),
// for Go migrations; `shoal autogen` writes the same steps as SQL.
//
// newCreateSQL is the complete CREATE TABLE statement of the new shape,
// under the table's own name. The steps, all on tx:
//
//  1. views, and triggers of other tables, that mention the table (or a
//     view so dropped) are dropped (SQLite refuses the rename while they
//     point at a missing table or view);
//  2. the new table is created under a temporary name;
//  3. every column the old and new tables share (by name, generated columns
//     excepted) is copied, rows keeping their rowid when the table has one;
//  4. the AUTOINCREMENT counter is carried over (sqlite_sequence), so ids
//     of deleted rows are never reused;
//  5. the old table is dropped and the new one renamed to its name;
//  6. the table's indexes and triggers are created again, then the views
//     and triggers of step 1.
//
// An index, trigger or view that no longer fits the new shape (it uses a
// dropped column) makes RebuildTable fail naming it: drop it first, or
// create it again differently after. It must run inside the engine's run,
// where foreign keys are off (so dropping the old table deletes no child
// rows) and foreign_key_check runs before COMMIT.
func RebuildTable(ctx context.Context, tx *sql.Tx, table, newCreateSQL string) error {
	_, err := rebuildTable(ctx, tx, table, newCreateSQL, rebuildOptions{recreateOwn: true, dependents: true})
	return err
}

// rebuildOptions tune rebuildTable.
type rebuildOptions struct {
	// renames maps new column names (lower case) to the old column they
	// take their values from.
	renames map[string]string
	// recreateOwn recreates the table's own indexes and triggers from the
	// old schema; otherwise indexes are created from indexes, and triggers
	// are left to the caller.
	recreateOwn bool
	indexes     []engine.SchemaObject
	// dependents drops and recreates the views and other tables' triggers
	// that mention the table; otherwise the caller does.
	dependents bool
}

// rebuildTable runs the rebuild on q and returns its statements, in order,
// as SQL a migration can hold (data-independent).
func rebuildTable(ctx context.Context, q querier, table, newCreate string, o rebuildOptions) ([]string, error) {
	var out []string
	exec := func(stmt string) error {
		if _, err := q.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("rebuilding %s: %s: %w", table, firstWords(stmt), err)
		}
		out = append(out, stmt)
		return nil
	}
	var realName string
	err := q.QueryRowContext(ctx, `SELECT name FROM sqlite_schema WHERE type = 'table' AND name = ? COLLATE NOCASE`, table).Scan(&realName)
	if err == sql.ErrNoRows {
		return nil, fmt.Errorf("rebuilding %s: no such table", table)
	}
	if err != nil {
		return nil, err
	}
	toks := tokenize(newCreate, 1)
	ni := createNameIndex(toks)
	if ni < 0 || !toks[0].is("create") || !strings.EqualFold(toks[ni].Val, realName) {
		return nil, fmt.Errorf("rebuilding %s: the new statement must be CREATE TABLE %s (...)", table, realName)
	}

	// Objects to set aside and recreate.
	type obj struct{ typ, name, tbl, sql string }
	var own, deps []obj
	rows, err := q.QueryContext(ctx, `SELECT type, name, tbl_name, sql FROM sqlite_schema WHERE sql IS NOT NULL AND type IN ('index','trigger','view') ORDER BY rowid`)
	if err != nil {
		return nil, err
	}
	var others []obj
	for rows.Next() {
		var x obj
		if err := rows.Scan(&x.typ, &x.name, &x.tbl, &x.sql); err != nil {
			rows.Close()
			return nil, err
		}
		switch {
		case strings.EqualFold(x.tbl, realName) && x.typ != "view":
			own = append(own, x)
		case x.typ != "index":
			others = append(others, x)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	// Dependents: views and triggers that mention the table, or a view that
	// mentions it (SQLite's RENAME checks every view and trigger), kept in
	// creation order.
	set := map[string]bool{strings.ToLower(realName): true}
	isDep := make([]bool, len(others))
	for changed := true; changed; {
		changed = false
		for i, x := range others {
			if isDep[i] || !mentionsAny(x.sql, set) {
				continue
			}
			isDep[i], changed = true, true
			if x.typ == "view" {
				set[strings.ToLower(x.name)] = true
			}
		}
	}
	for i, x := range others {
		if isDep[i] {
			deps = append(deps, x)
		}
	}
	if o.dependents {
		for _, d := range deps {
			if err := exec(fmt.Sprintf("DROP %s %s;", strings.ToUpper(d.typ), quoteIdent(d.name))); err != nil {
				return nil, err
			}
		}
	}

	// The new table under a temporary name.
	tmp := realName + "_new"
	for i := 2; ; i++ {
		var n int
		if err := q.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_schema WHERE name = ? COLLATE NOCASE`, tmp).Scan(&n); err != nil {
			return nil, err
		}
		if n == 0 {
			break
		}
		tmp = fmt.Sprintf("%s_new%d", realName, i)
	}
	t := toks[ni]
	createTmp := strings.TrimRight(strings.TrimSpace(newCreate[:t.Start]+quoteIdentLike(tmp, t.Text)+newCreate[t.End:]), ";") + ";"
	if err := exec(createTmp); err != nil {
		return nil, err
	}
	oldCols, err := tableColumns(ctx, q, realName)
	if err != nil {
		return nil, err
	}
	newCols, err := tableColumns(ctx, q, tmp)
	if err != nil {
		return nil, err
	}
	oldBy := map[string]column{}
	for _, c := range oldCols {
		oldBy[strings.ToLower(c.name)] = c
	}
	var dst, src []string
	for _, c := range newCols {
		if c.generated {
			continue
		}
		from := strings.ToLower(c.name)
		if r, ok := o.renames[from]; ok {
			from = r
		}
		oc, ok := oldBy[from]
		if !ok || oc.generated {
			continue
		}
		dst = append(dst, quoteIdent(c.name))
		src = append(src, quoteIdent(oc.name))
	}
	if len(dst) > 0 {
		if err := exec(fmt.Sprintf("INSERT INTO %s (%s)\n    SELECT %s FROM %s;", quoteIdent(tmp), strings.Join(dst, ", "), strings.Join(src, ", "), quoteIdent(realName))); err != nil {
			return nil, err
		}
	}
	if hasAutoincrement(newCreate) {
		// Carry the counter over: max of both, so no id is ever reused.
		if err := exec(fmt.Sprintf("UPDATE sqlite_sequence SET seq = max(seq, coalesce((SELECT seq FROM sqlite_sequence WHERE name = %s), 0)) WHERE name = %s;", quoteString(realName), quoteString(tmp))); err != nil {
			return nil, err
		}
		if err := exec(fmt.Sprintf("INSERT INTO sqlite_sequence (name, seq) SELECT %s, seq FROM sqlite_sequence WHERE name = %s\n    AND NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = %s);", quoteString(tmp), quoteString(realName), quoteString(tmp))); err != nil {
			return nil, err
		}
	}
	if err := exec(fmt.Sprintf("DROP TABLE %s;", quoteIdent(realName))); err != nil {
		return nil, err
	}
	if err := exec(fmt.Sprintf("ALTER TABLE %s RENAME TO %s;", quoteIdent(tmp), quoteIdent(realName))); err != nil {
		return nil, err
	}
	if o.recreateOwn {
		for _, x := range own {
			if err := exec(strings.TrimRight(x.sql, "; \n") + ";"); err != nil {
				return nil, fmt.Errorf("%w (it no longer fits the new table: drop %s %s before the rebuild, or recreate it after)", err, x.typ, x.name)
			}
		}
	} else {
		for _, x := range o.indexes {
			if err := exec(x.SQL + ";"); err != nil {
				return nil, err
			}
		}
	}
	if o.dependents {
		for _, d := range deps {
			if err := exec(strings.TrimRight(d.sql, "; \n") + ";"); err != nil {
				return nil, fmt.Errorf("%w (it no longer fits the new table: drop %s %s before the rebuild, or recreate it after)", err, d.typ, d.name)
			}
		}
	}
	return out, nil
}

// mentionsAny reports whether sql names any of names (lower case).
func mentionsAny(sql string, names map[string]bool) bool {
	for _, t := range tokenize(sql, 1) {
		if t.isName() && names[nameVal(t)] {
			return true
		}
	}
	return false
}

// hasAutoincrement reports the AUTOINCREMENT keyword in a CREATE TABLE.
func hasAutoincrement(create string) bool {
	for _, t := range tokenize(create, 1) {
		if t.is("autoincrement") {
			return true
		}
	}
	return false
}

// quoteIdent writes a name bare when it can be, else in double quotes.
func quoteIdent(name string) string {
	if plainIdent(name) {
		return name
	}
	return `"` + strings.ReplaceAll(name, `"`, `""`) + `"`
}

// quoteIdentLike quotes name the way the token orig was quoted (so a
// rebuilt table's CREATE statement keeps the user's style).
func quoteIdentLike(name, orig string) string {
	switch {
	case strings.HasPrefix(orig, `"`):
		return `"` + strings.ReplaceAll(name, `"`, `""`) + `"`
	case strings.HasPrefix(orig, "`"):
		return "`" + strings.ReplaceAll(name, "`", "``") + "`"
	case strings.HasPrefix(orig, "["):
		return "[" + name + "]"
	}
	return quoteIdent(name)
}

func quoteString(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// firstWords is the start of a statement for messages.
func firstWords(s string) string {
	s = engine.NormalizeSQL(s)
	if len(s) > 60 {
		s = s[:60] + "..."
	}
	return s
}
