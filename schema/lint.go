package schema

import (
	"fmt"
	"sort"
	"strings"

	"github.com/shoal-dev/shoal/engine"
	"github.com/shoal-dev/shoal/internal/sqltext"
)

// Lint codes reported by `shoal check` (docs/schema.md lists them all).
const (
	LintDropTable       = "SH001" // DROP TABLE: the table and its rows are gone
	LintDropColumn      = "SH002" // DROP COLUMN (or a rebuild without it): its values are gone
	LintRebuildNoTx     = "SH003" // rebuild of a table with ON DELETE CASCADE/SET NULL children outside the FK-safe run
	LintPragmaInTx      = "SH004" // PRAGMA foreign_keys / journal_mode inside a transaction
	LintDroppedColInUse = "SH005" // a dropped column still used by a view or trigger
	LintIfNotExists     = "SH006" // CREATE ... IF NOT EXISTS hides drift
)

// Lint severities: warnings fail `shoal check` only with --strict.
const (
	SeverityError   = "error"
	SeverityWarning = "warning"
)

// LintFinding is one lint result about a migration file.
type LintFinding struct {
	Code     string `json:"code"`
	Severity string `json:"severity"`
	File     string `json:"file"`
	Line     int    `json:"line"`
	Message  string `json:"message"`
	Fix      string `json:"fix"`
	// History marks a finding in a migration at or before the check's
	// baseline: reported, never failing the check.
	History bool `json:"history"`
}

func (f LintFinding) String() string {
	return fmt.Sprintf("%s:%d: %s %s: %s (fix: %s)", f.File, f.Line, f.Code, f.Severity, f.Message, f.Fix)
}

// lintSeverity is the default severity of each code.
var lintSeverity = map[string]string{
	LintDropTable:       SeverityWarning,
	LintDropColumn:      SeverityWarning,
	LintRebuildNoTx:     SeverityError,
	LintPragmaInTx:      SeverityError,
	LintDroppedColInUse: SeverityError,
	LintIfNotExists:     SeverityError,
}

// Token kinds of the lint tokenizer.
const (
	tokWord   = iota // keyword or bare identifier; Val lower-cased
	tokIdent         // quoted identifier ("x", `x`, [x]); Val unquoted
	tokString        // 'string'
	tokNumber        // 123, 1.5
	tokPunct         // ( ) , ; . = and other symbols
)

// sqlTok is one token of a statement: comments and whitespace are dropped.
type sqlTok struct {
	Kind int
	Text string // as written
	Val  string // lower-cased word, unquoted identifier, or Text
	Line int
	// Start and End are byte offsets in the statement.
	Start, End int
}

// isName reports a token that can name an object: a word or quoted identifier.
func (t sqlTok) isName() bool { return t.Kind == tokWord || t.Kind == tokIdent }

// is reports a bare word equal to w (lower case).
func (t sqlTok) is(w string) bool { return t.Kind == tokWord && t.Val == w }

// tokenize cuts one statement into tokens with SQLite's lexical rules (the
// splitter's lexer): strings, quoted identifiers and comments are whole
// tokens, so nothing inside them is ever taken for a keyword.
func tokenize(sql string, firstLine int) []sqlTok {
	l := sqltext.NewLexer(sql, firstLine)
	var out []sqlTok
	for {
		tk, ok, err := l.Next()
		if err != nil || !ok {
			return out
		}
		if tk.Kind == sqltext.WS {
			continue
		}
		text := sql[tk.Start:tk.End]
		// The splitter's lexer ends a quoted token at the first closing
		// quote: 'it''s' comes as two tokens; join them.
		if n := len(out); n > 0 && out[n-1].End == tk.Start && (text[0] == '\'' || text[0] == '"' || text[0] == '`') && out[n-1].Text[0] == text[0] {
			tk.Start = out[n-1].Start
			tk.Line = out[n-1].Line
			text = sql[tk.Start:tk.End]
			out = out[:n-1]
		}
		t := sqlTok{Text: text, Val: text, Line: tk.Line, Kind: tokPunct, Start: tk.Start, End: tk.End}
		switch c := text[0]; {
		case c == '\'':
			t.Kind = tokString
		case c == '"' || c == '`':
			t.Kind = tokIdent
			t.Val = strings.ReplaceAll(text[1:len(text)-1], string(c)+string(c), string(c))
		case c == '[':
			t.Kind = tokIdent
			t.Val = text[1 : len(text)-1]
		case c >= '0' && c <= '9':
			t.Kind = tokNumber
		case sqltext.IDChar(c):
			t.Kind = tokWord
			t.Val = strings.ToLower(text)
		}
		out = append(out, t)
	}
}

// nameVal is the comparable form of an object name (SQLite compares names
// case-insensitively for ASCII).
func nameVal(t sqlTok) string { return strings.ToLower(t.Val) }

// stmtInfo is what lint needs to know about one statement.
type stmtInfo struct {
	line int
	toks []sqlTok
	// kind: "drop_table", "drop_column", "rename_table", "rename_column",
	// "create_table", "if_not_exists", "pragma", "insert_select" or "".
	kinds map[string]bool
	table string // the table the statement is about (lower case)
	other string // the column dropped, the new name of a rename, the pragma name
	from  string // rename column: old name; insert_select: the source table
}

// analyze classifies a statement.
func analyze(s engine.Statement) stmtInfo {
	toks := tokenize(s.SQL, s.Line)
	si := stmtInfo{line: s.Line, toks: toks, kinds: map[string]bool{}}
	at := func(i int) sqlTok {
		if i < len(toks) {
			return toks[i]
		}
		return sqlTok{Kind: tokPunct}
	}
	// qualified reads [schema.]name at i and returns the name and the index after it.
	qualified := func(i int) (string, int) {
		if at(i).isName() && at(i+1).Text == "." && at(i+2).isName() {
			return nameVal(at(i + 2)), i + 3
		}
		if at(i).isName() {
			return nameVal(at(i)), i + 1
		}
		return "", i
	}
	switch {
	case at(0).is("drop") && at(1).is("table"):
		i := 2
		if at(i).is("if") && at(i+1).is("exists") {
			i += 2
		}
		si.table, _ = qualified(i)
		si.kinds["drop_table"] = true
	case at(0).is("alter") && at(1).is("table"):
		name, i := qualified(2)
		si.table = name
		switch {
		case at(i).is("drop"):
			i++
			if at(i).is("column") {
				i++
			}
			si.other = nameVal(at(i))
			si.kinds["drop_column"] = true
		case at(i).is("rename") && at(i+1).is("to"):
			si.other = nameVal(at(i + 2))
			si.kinds["rename_table"] = true
		case at(i).is("rename"):
			i++
			if at(i).is("column") {
				i++
			}
			if at(i + 1).is("to") {
				si.from, si.other = nameVal(at(i)), nameVal(at(i+2))
				si.kinds["rename_column"] = true
			}
		}
	case at(0).is("create"):
		i := 1
		for at(i).is("temp") || at(i).is("temporary") || at(i).is("unique") || at(i).is("virtual") {
			i++
		}
		what := at(i).Val
		i++
		if at(i).is("if") && at(i+1).is("not") && at(i+2).is("exists") {
			si.kinds["if_not_exists"] = true
			si.other = what
			i += 3
		}
		if what == "table" {
			si.table, _ = qualified(i)
			si.kinds["create_table"] = true
		}
	case at(0).is("pragma"):
		name, i := qualified(1)
		if at(i).Text == "=" || at(i).Text == "(" {
			si.other = name
			si.kinds["pragma"] = true
		}
	case at(0).is("insert") || at(0).is("replace"):
		// INSERT INTO x ... SELECT ... FROM y: a copy out of y.
		sel := -1
		for i, t := range toks {
			if t.is("select") {
				sel = i
				break
			}
		}
		if sel >= 0 {
			for i := sel; i < len(toks); i++ {
				if toks[i].is("from") {
					if name, _ := qualified(i + 1); name != "" {
						si.from = name
						si.kinds["insert_select"] = true
					}
					break
				}
			}
		}
	}
	return si
}

// mentions reports whether a statement's tokens name every one of words
// (lower case) as a word or quoted identifier.
func mentions(sql string, words ...string) bool {
	found := make(map[string]bool, len(words))
	for _, t := range tokenize(sql, 1) {
		if t.isName() {
			found[nameVal(t)] = true
		}
	}
	for _, w := range words {
		if !found[w] {
			return false
		}
	}
	return true
}

// lintAllowed reads `-- shoal:allow SH001 SH002` comments of a file: the
// codes listed are not reported for that file.
func lintAllowed(text string) map[string]bool {
	allowed := map[string]bool{}
	l := sqltext.NewLexer(text, 1)
	for {
		tk, ok, err := l.Next()
		if err != nil || !ok {
			return allowed
		}
		if !tk.Comment {
			continue
		}
		c := text[tk.Start:tk.End]
		i := strings.Index(c, "shoal:allow")
		if i < 0 {
			continue
		}
		for _, f := range strings.FieldsFunc(c[i+len("shoal:allow"):], func(r rune) bool { return r == ' ' || r == ',' || r == '\t' || r == '*' || r == '/' }) {
			if strings.HasPrefix(strings.ToUpper(f), "SH") {
				allowed[strings.ToUpper(f)] = true
			}
		}
	}
}

// lintState is the schema around one migration, read from the scratch DB
// by `shoal check`; nil when the migration did not apply.
type lintState struct {
	before, after *schemaState
}

// lintMigration lints one migration's sections. text is the file's text
// (for shoal:allow comments); st, when not nil, the schema before and after
// it.
func lintMigration(m *engine.Migration, text string, st *lintState) []LintFinding {
	if m.Kind != engine.KindSQL && m.Kind != engine.KindSQLNoTx {
		return nil
	}
	var out []LintFinding
	add := func(code string, line int, msg, fix string) {
		out = append(out, LintFinding{Code: code, Severity: lintSeverity[code], File: m.File, Line: line, Message: msg, Fix: fix})
	}
	up := make([]stmtInfo, len(m.Up))
	for i, s := range m.Up {
		up[i] = analyze(s)
	}
	down := make([]stmtInfo, len(m.Down))
	for i, s := range m.Down {
		down[i] = analyze(s)
	}

	// SH004: pragmas that do nothing (or fail) inside a transaction.
	for _, sec := range []struct {
		stmts []stmtInfo
		noTx  bool
		name  string
	}{{up, m.UpNoTx, "up"}, {down, m.DownNoTx, "down"}} {
		if sec.noTx {
			continue
		}
		for _, s := range sec.stmts {
			if !s.kinds["pragma"] {
				continue
			}
			switch s.other {
			case "foreign_keys":
				add(LintPragmaInTx, s.line, "PRAGMA foreign_keys in a transactional "+sec.name+" section is a no-op: SQLite ignores it inside a transaction",
					"remove it: shoal runs migrations with foreign keys off and checks them before COMMIT")
			case "journal_mode":
				add(LintPragmaInTx, s.line, "PRAGMA journal_mode in a transactional "+sec.name+" section fails: the journal mode cannot change inside a transaction",
					"move it to a migration of its own marked `-- migrate:up transaction:false`, or set it when the DB is created")
			}
		}
	}

	// Destructive statements and IF NOT EXISTS, up section only: a down
	// section undoes an up and drops by nature.
	createdHere := map[string]bool{}
	explicitDrops := map[string]bool{} // table.column dropped with DROP COLUMN
	renamedCols := map[string]bool{}   // table.old renamed with RENAME COLUMN
	for i, s := range up {
		switch {
		case s.kinds["if_not_exists"]:
			add(LintIfNotExists, s.line, fmt.Sprintf("CREATE %s IF NOT EXISTS hides drift: on a DB that already has it with another shape the migration silently does nothing", strings.ToUpper(s.other)),
				"remove IF NOT EXISTS: a migration runs once per DB, so the object cannot exist unless the DB drifted, which should fail loudly")
		case s.kinds["create_table"]:
			createdHere[s.table] = true
		case s.kinds["drop_column"]:
			explicitDrops[s.table+"."+s.other] = true
			add(LintDropColumn, s.line, fmt.Sprintf("DROP COLUMN %s.%s deletes the column's values in every tenant", s.table, s.other),
				"make sure nothing reads the column and its data is no longer needed (the down section cannot bring the values back); silence with -- shoal:allow SH002")
		case s.kinds["rename_column"]:
			renamedCols[s.table+"."+s.from] = true
		case s.kinds["drop_table"]:
			if createdHere[s.table] || isRebuild(up, i) {
				continue
			}
			if st != nil && st.before != nil && st.before.cols[s.table] == nil {
				continue // DROP TABLE IF EXISTS of a table the DB does not have
			}
			add(LintDropTable, s.line, fmt.Sprintf("DROP TABLE %s deletes the table and all its rows in every tenant", s.table),
				"make sure the table is no longer used and its data is not needed (the down section can recreate it, empty); silence with -- shoal:allow SH001")
		}
	}

	if st != nil && st.before != nil && st.after != nil {
		// Columns that disappeared from tables that still exist: a rebuild
		// that leaves them out (SH002) and views or triggers still using
		// them (SH005).
		tables := make([]string, 0, len(st.after.cols))
		for t := range st.after.cols {
			tables = append(tables, t)
		}
		sort.Strings(tables)
		for _, t := range tables {
			beforeCols, ok := st.before.cols[t]
			if !ok {
				continue
			}
			now := map[string]bool{}
			for _, c := range st.after.cols[t] {
				now[strings.ToLower(c)] = true
			}
			for _, c := range beforeCols {
				lc := strings.ToLower(c)
				if now[lc] || renamedCols[t+"."+lc] {
					continue
				}
				line := firstLine(up)
				if l := rebuildLine(up, t); l > 0 {
					line = l
				}
				if !explicitDrops[t+"."+lc] {
					add(LintDropColumn, line, fmt.Sprintf("rebuilding %s leaves out column %s: its values are deleted in every tenant", t, c),
						"keep the column in the new table, or accept the loss; silence with -- shoal:allow SH002")
				} else if l := dropColumnLine(up, t, lc); l > 0 {
					line = l
				}
				for _, o := range st.after.objs {
					if o.Type != "view" && o.Type != "trigger" {
						continue
					}
					if (strings.EqualFold(o.Table, t) || mentions(o.SQL, t)) && mentions(o.SQL, lc) {
						add(LintDroppedColInUse, line, fmt.Sprintf("%s %s still uses %s.%s, which this migration drops: it fails when it runs", o.Type, o.Name, t, c),
							fmt.Sprintf("in the same migration DROP %s %s and create it again without %s, or keep the column", strings.ToUpper(o.Type), o.Name, c))
					}
				}
			}
		}

		// SH003: a rebuild (DROP TABLE of a table that another table
		// references with ON DELETE CASCADE or SET NULL) outside a
		// transaction.
		for _, sec := range []struct {
			stmts []stmtInfo
			noTx  bool
		}{{up, m.UpNoTx}, {down, m.DownNoTx}} {
			if !sec.noTx {
				continue
			}
			for _, s := range sec.stmts {
				if !s.kinds["drop_table"] {
					continue
				}
				for _, fk := range st.before.fks {
					if fk.parent != s.table || fk.child == s.table {
						continue
					}
					add(LintRebuildNoTx, s.line, fmt.Sprintf("DROP TABLE %s in a transaction:false section: %s references it with ON DELETE %s, so with foreign keys on (a PRAGMA in the section, or another tool running the file) its rows are deleted or nulled", s.table, fk.child, fk.onDelete),
						"remove transaction:false: shoal runs a transactional rebuild with foreign keys off and checks them before COMMIT")
					break
				}
			}
		}
	}

	allowed := lintAllowed(text)
	kept := out[:0]
	seen := map[string]bool{}
	for _, f := range out {
		k := f.Code + "\x00" + f.Message
		if allowed[f.Code] || seen[k] {
			continue
		}
		seen[k] = true
		kept = append(kept, f)
	}
	sort.SliceStable(kept, func(i, j int) bool { return kept[i].Line < kept[j].Line })
	return kept
}

// isRebuild reports whether the DROP TABLE at up[i] is part of a table
// rebuild: the table was copied out before (INSERT ... SELECT ... FROM it)
// or another table is renamed to its name after.
func isRebuild(up []stmtInfo, i int) bool {
	t := up[i].table
	for j, s := range up {
		if j < i && s.kinds["insert_select"] && s.from == t {
			return true
		}
		if j > i && s.kinds["rename_table"] && s.other == t {
			return true
		}
	}
	return false
}

// rebuildLine is the line of the DROP TABLE of a rebuild of t, 0 if none.
func rebuildLine(up []stmtInfo, t string) int {
	for _, s := range up {
		if s.kinds["drop_table"] && s.table == t {
			return s.line
		}
	}
	return 0
}

func dropColumnLine(up []stmtInfo, t, c string) int {
	for _, s := range up {
		if s.kinds["drop_column"] && s.table == t && s.other == c {
			return s.line
		}
	}
	return 0
}

func firstLine(up []stmtInfo) int {
	if len(up) > 0 {
		return up[0].line
	}
	return 1
}
