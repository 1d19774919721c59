package engine

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"unsafe"

	"modernc.org/libc"
	sqlite3 "modernc.org/sqlite/lib"
)

// --- SQLite itself as the oracle -------------------------------------------

// sqliteComplete calls SQLite's own sqlite3_complete() (modernc.org/sqlite's
// transpiled C). This SQLite release reports a trailing "--" comment without
// a newline as incomplete; the classic behaviour (and IsComplete's) ends it
// at the end of the text, so the oracle is asked about s+"\n", which changes
// nothing else.
func sqliteComplete(t testing.TB, s string) bool {
	t.Helper()
	if strings.IndexByte(s, 0) >= 0 {
		t.Fatalf("oracle given a NUL byte")
	}
	tls := libc.NewTLS()
	defer tls.Close()
	p, err := libc.CString(s + "\n")
	if err != nil {
		t.Fatal(err)
	}
	defer libc.Xfree(tls, p)
	return sqlite3.Xsqlite3_complete(tls, p) != 0
}

// sqlitePreparer prepares SQL text statement by statement with
// sqlite3_prepare_v2 and its tail pointer, the way sqlite3_exec() walks a
// script, without running anything.
type sqlitePreparer struct {
	tls *libc.TLS
	db  uintptr
}

func newSQLitePreparer(t testing.TB, schema ...string) *sqlitePreparer {
	t.Helper()
	tls := libc.NewTLS()
	name, _ := libc.CString(":memory:")
	defer libc.Xfree(tls, name)
	pdb := tls.Alloc(8)
	defer tls.Free(8)
	if rc := sqlite3.Xsqlite3_open(tls, name, pdb); rc != sqlite3.SQLITE_OK {
		t.Fatalf("sqlite3_open: %d", rc)
	}
	p := &sqlitePreparer{tls: tls, db: *(*uintptr)(cptr(pdb))}
	t.Cleanup(func() {
		sqlite3.Xsqlite3_close(p.tls, p.db)
		p.tls.Close()
	})
	for _, s := range schema {
		z, _ := libc.CString(s)
		rc := sqlite3.Xsqlite3_exec(tls, p.db, z, 0, 0, 0)
		libc.Xfree(tls, z)
		if rc != sqlite3.SQLITE_OK {
			t.Fatalf("schema %q: %s", s, libc.GoString(sqlite3.Xsqlite3_errmsg(tls, p.db)))
		}
	}
	return p
}

// cptr turns an address in SQLite's (non-Go) memory into a pointer.
func cptr(addr uintptr) unsafe.Pointer { return *(*unsafe.Pointer)(unsafe.Pointer(&addr)) }

// count returns the number of statements SQLite prepares from src.
func (p *sqlitePreparer) count(src string) (int, error) {
	tls := p.tls
	z, err := libc.CString(src)
	if err != nil {
		return 0, err
	}
	defer libc.Xfree(tls, z)
	out := tls.Alloc(16) // *stmt, *tail
	defer tls.Free(16)
	n := 0
	for cur := z; *(*byte)(cptr(cur)) != 0; {
		rc := sqlite3.Xsqlite3_prepare_v2(tls, p.db, cur, -1, out, out+8)
		if rc != sqlite3.SQLITE_OK {
			return n, errors.New(libc.GoString(sqlite3.Xsqlite3_errmsg(tls, p.db)))
		}
		stmt := *(*uintptr)(cptr(out))
		tail := *(*uintptr)(cptr(out + 8))
		if stmt != 0 {
			n++
			sqlite3.Xsqlite3_finalize(tls, stmt)
		}
		if tail == cur {
			break
		}
		cur = tail
	}
	return n, nil
}

// --- SplitStatements -------------------------------------------------------

func wantStmts(pairs ...any) []Statement {
	var out []Statement
	for i := 0; i < len(pairs); i += 2 {
		out = append(out, Statement{SQL: pairs[i].(string), Line: pairs[i+1].(int)})
	}
	return out
}

func TestSplitStatements(t *testing.T) {
	trigger := "CREATE TRIGGER tr AFTER INSERT ON t BEGIN\n  UPDATE t SET a = 1;\n  DELETE FROM t WHERE a = ';';\nEND;"
	tests := []struct {
		name string
		in   string
		want []Statement
	}{
		{"empty", "", nil},
		{"whitespace only", " \n\t\r\n\f", nil},
		{"comments only", "-- one\n/* two; */\n-- three;", nil},
		{"lone semicolons", " ; ;;\n;", nil},
		{"one", "SELECT 1;", wantStmts("SELECT 1;", 1)},
		{"no final semicolon", "SELECT 1", wantStmts("SELECT 1;", 1)},
		{"no final semicolon, trailing comment", "SELECT 1 -- the end", wantStmts("SELECT 1;", 1)},
		{"no final semicolon, trailing block comment", "SELECT 1 /* x */\n\n", wantStmts("SELECT 1;", 1)},
		{"two on a line", "SELECT 1; SELECT 2;", wantStmts("SELECT 1;", 1, "SELECT 2;", 1)},
		{"lines skip comments and blanks",
			"\n\n-- users\nCREATE TABLE t(a);\n\n/* data\n */\nINSERT INTO t VALUES(1);\n",
			wantStmts("CREATE TABLE t(a);", 4, "INSERT INTO t VALUES(1);", 8)},
		{"empty statements dropped", ";;SELECT 1;;\n;SELECT 2", wantStmts("SELECT 1;", 1, "SELECT 2;", 2)},
		{"string with semicolon", "INSERT INTO t VALUES('a;b'); SELECT 2;", wantStmts("INSERT INTO t VALUES('a;b');", 1, "SELECT 2;", 1)},
		{"escaped quote", "SELECT 'it''s; here';", wantStmts("SELECT 'it''s; here';", 1)},
		{"double-quoted identifier", `CREATE TABLE "a;b"(x);`, wantStmts(`CREATE TABLE "a;b"(x);`, 1)},
		{"backquoted identifier", "SELECT `a;b` FROM t;", wantStmts("SELECT `a;b` FROM t;", 1)},
		{"bracketed identifier", "SELECT [a;b] FROM t;", wantStmts("SELECT [a;b] FROM t;", 1)},
		{"line comment inside kept", "SELECT 1 -- not; the end\n, 2;", wantStmts("SELECT 1 -- not; the end\n, 2;", 1)},
		{"block comment inside kept", "SELECT /* ; */ 1;", wantStmts("SELECT /* ; */ 1;", 1)},
		{"leading block comment dropped", "/* a */ SELECT 1;", wantStmts("SELECT 1;", 1)},
		{"comment after semicolon dropped", "SELECT 1; -- x;\nSELECT 2; /* y; */", wantStmts("SELECT 1;", 1, "SELECT 2;", 2)},
		{"multi-line string", "SELECT 'a\nb';\nSELECT 2;", wantStmts("SELECT 'a\nb';", 1, "SELECT 2;", 3)},
		{"CRLF", "SELECT 1;\r\nSELECT 2;\r\n", wantStmts("SELECT 1;", 1, "SELECT 2;", 2)},
		{"trigger", trigger + "\nSELECT 1;", wantStmts(trigger, 1, "SELECT 1;", 5)},
		{"temp trigger", "create temp trigger x after delete on t begin select 1; end;", wantStmts("create temp trigger x after delete on t begin select 1; end;", 1)},
		{"temporary trigger", "CREATE TEMPORARY TRIGGER x AFTER DELETE ON t BEGIN SELECT 1; END; SELECT 2;",
			wantStmts("CREATE TEMPORARY TRIGGER x AFTER DELETE ON t BEGIN SELECT 1; END;", 1, "SELECT 2;", 1)},
		{"explain create trigger", "EXPLAIN CREATE TRIGGER x AFTER DELETE ON t BEGIN SELECT 1; END;",
			wantStmts("EXPLAIN CREATE TRIGGER x AFTER DELETE ON t BEGIN SELECT 1; END;", 1)},
		{"trigger without final semicolon", "CREATE TRIGGER x AFTER DELETE ON t BEGIN SELECT 1; END",
			wantStmts("CREATE TRIGGER x AFTER DELETE ON t BEGIN SELECT 1; END;", 1)},
		{"trigger with CASE END", "CREATE TRIGGER x AFTER DELETE ON t BEGIN SELECT CASE WHEN 1 THEN 2 END; END; SELECT 3;",
			wantStmts("CREATE TRIGGER x AFTER DELETE ON t BEGIN SELECT CASE WHEN 1 THEN 2 END; END;", 1, "SELECT 3;", 1)},
		{"trigger with comments", "CREATE TRIGGER x AFTER DELETE ON t BEGIN -- ; END;\n SELECT 1; /* END; */ END;",
			wantStmts("CREATE TRIGGER x AFTER DELETE ON t BEGIN -- ; END;\n SELECT 1; /* END; */ END;", 1)},
		{"table named like keywords", "CREATE TABLE trigger_log(end_at, temp);\nSELECT end_at FROM trigger_log;",
			wantStmts("CREATE TABLE trigger_log(end_at, temp);", 1, "SELECT end_at FROM trigger_log;", 2)},
		{"create table then trigger word", "CREATE TABLE t(trigger);", wantStmts("CREATE TABLE t(trigger);", 1)},
		{"operators", "SELECT 1 - -2 / 3;", wantStmts("SELECT 1 - -2 / 3;", 1)},
		{"unicode", "CREATE TABLE café(naïve TEXT DEFAULT 'é;');", wantStmts("CREATE TABLE café(naïve TEXT DEFAULT 'é;');", 1)},
		{"space before semicolon kept", "SELECT 1 ;", wantStmts("SELECT 1 ;", 1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := SplitStatements(tt.in)
			if err != nil {
				t.Fatalf("SplitStatements(%q): %v", tt.in, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("SplitStatements(%q)\n got %#v\nwant %#v", tt.in, got, tt.want)
			}
			checkSplit(t, tt.in, got)
		})
	}
}

func TestSplitStatementsErrors(t *testing.T) {
	tests := []struct {
		name string
		in   string
		line int
		msg  string
	}{
		{"string", "SELECT 1;\n\nSELECT 'abc;", 3, "unterminated string literal"},
		{"double quote", "SELECT \"x;\nFROM t", 1, "unterminated quoted identifier"},
		{"backquote", "\nSELECT `x", 2, "unterminated quoted identifier"},
		{"bracket", "SELECT [x;", 1, "unterminated [identifier]"},
		{"block comment", "SELECT 1;\n/* open;\n", 2, "unterminated /* comment"},
		{"trigger without END", "SELECT 1;\nCREATE TRIGGER x AFTER DELETE ON t BEGIN\nSELECT 1;\n", 2, "unterminated CREATE TRIGGER"},
		{"trigger without body end", "CREATE TRIGGER x AFTER DELETE ON t BEGIN SELECT 1", 1, "unterminated CREATE TRIGGER"},
		{"NUL", "SELECT 1;\nSELECT 'a\x00';", 2, "NUL byte"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := SplitStatements(tt.in)
			if err == nil {
				t.Fatalf("SplitStatements(%q) = %#v, want an error", tt.in, got)
			}
			var se *syntaxError
			if !errors.As(err, &se) || se.Line != tt.line || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("SplitStatements(%q) error %q (%#v), want line %d and %q", tt.in, err, err, tt.line, tt.msg)
			}
			if !strings.Contains(err.Error(), fmt.Sprintf("line %d", tt.line)) {
				t.Fatalf("error %q does not name line %d", err, tt.line)
			}
		})
	}
}

func TestSplitSQLFirstLine(t *testing.T) {
	got, err := splitSQL("\nSELECT 1;\nSELECT 2;", 10)
	if err != nil {
		t.Fatal(err)
	}
	if want := wantStmts("SELECT 1;", 11, "SELECT 2;", 12); !reflect.DeepEqual(got, want) {
		t.Fatalf("got %#v, want %#v", got, want)
	}
	_, err = splitSQL("\n'x", 10)
	var se *syntaxError
	if !errors.As(err, &se) || se.Line != 11 {
		t.Fatalf("error %v, want line 11", err)
	}
}

func TestIsComplete(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"", false},
		{"   \n", false},
		{"-- c", false},
		{"/* c */", false},
		{";", true},
		{"SELECT 1", false},
		{"SELECT 1;", true},
		{"SELECT 1; ", true},
		{"SELECT 1; -- done", true},
		{"SELECT 1; /* done */\n", true},
		{"SELECT 1; /* open", false},
		{"SELECT ';'", false},
		{"SELECT ';", false},
		{"SELECT \"a;\";", true},
		{"SELECT [a;];", true},
		{"SELECT `a;`;", true},
		{"SELECT 1 -- ;", false},
		{"CREATE TRIGGER x AFTER INSERT ON t BEGIN SELECT 1;", false},
		{"CREATE TRIGGER x AFTER INSERT ON t BEGIN SELECT 1; END", false},
		{"CREATE TRIGGER x AFTER INSERT ON t BEGIN SELECT 1; END;", true},
		{"CREATE TEMP TRIGGER x AFTER INSERT ON t BEGIN SELECT 1; END;", true},
		{"create temporary trigger x after insert on t begin select 1; end;", true},
		{"EXPLAIN CREATE TRIGGER x AFTER INSERT ON t BEGIN SELECT 1; END;", true},
		{"EXPLAIN SELECT 1;", true},
		{"CREATE TABLE trigger(x);", true},
		{"SELECT 1;\v", false},
		{"CREATE TRIGGER x AFTER INSERT ON t BEGIN SELECT 1;\vEND;", false},
		{"SELECT 1;\x00 SELECT 'open", true}, // stops at NUL, like the C function
	}
	for _, tt := range tests {
		if got := IsComplete(tt.in); got != tt.want {
			t.Errorf("IsComplete(%q) = %v, want %v", tt.in, got, tt.want)
		}
		if in, _, _ := strings.Cut(tt.in, "\x00"); sqliteComplete(t, in) != tt.want {
			t.Errorf("sqlite3_complete(%q) = %v, the test table says %v", in, !tt.want, tt.want)
		}
	}
}

// splitSeeds are inputs for FuzzSplit, run by plain `go test` too.
var splitSeeds = []string{
	"",
	";",
	"SELECT 1",
	"SELECT 1; SELECT 2;",
	"-- c\nSELECT 1; -- d",
	"SELECT 'a;b'; SELECT \"c;d\"; SELECT `e;f`; SELECT [g;h];",
	"SELECT 'it''s';",
	"SELECT /* ; */ 1; /* x",
	"SELECT 'open",
	"CREATE TRIGGER x AFTER INSERT ON t BEGIN SELECT 1; END; SELECT 2;",
	"CREATE TEMP TRIGGER x AFTER INSERT ON t BEGIN SELECT 1; SELECT 2 END; END",
	"EXPLAIN CREATE TEMPORARY TRIGGER x BEGIN ; END ;",
	"create trigger begin;end;end;",
	"CREATE TABLE trigger(end);",
	"CREATE TRIGGER x BEGIN",
	"END; CREATE; TRIGGER; TEMP;",
	"SELECT 1\r\n;\r\nSELECT 2",
	"\xef\xbb\xbfSELECT 1;",
	"\v;\vSELECT\v1\v;\vCREATE TRIGGER x BEGIN SELECT 1;\vEND\v;",
	"SELECT 'a\x00';",
	"SELECT [x",
	"- -- -\n/ /* / */;",
	"$a_1 ;é;\x80\xff;",
	"CREATE TRIGGER x AFTER INSERT ON t BEGIN SELECT 1;\nEND\n-- tail",
}

// sqlSpace is what SQLite takes for whitespace (not '\v': its tokenizer
// rejects it, and sqlite3_complete() takes it for a token).
const sqlSpace = " \t\n\f\r"

// gapEnd skips whitespace, ';' and comments from i (an implementation
// independent of the lexer) and returns where the next token starts, or -1
// when a block comment is not closed.
func gapEnd(s string, i int) int {
	for i < len(s) {
		switch {
		case strings.IndexByte(sqlSpace+";", s[i]) >= 0:
			i++
		case strings.HasPrefix(s[i:], "--"):
			j := strings.IndexByte(s[i:], '\n')
			if j < 0 {
				return len(s)
			}
			i += j
		case strings.HasPrefix(s[i:], "/*"):
			j := strings.Index(s[i+2:], "*/")
			if j < 0 {
				return -1
			}
			i += 2 + j + 2
		default:
			return i
		}
	}
	return i
}

// checkSplit checks the invariants of a successful split of src: the
// statements are the input's text in order with only whitespace, comments
// and ';' between them; each is one complete statement for SQLite and no
// shorter prefix of it ending in ';' is; lines are right.
func checkSplit(t *testing.T, src string, got []Statement) {
	t.Helper()
	pos := 0
	for k, st := range got {
		q := gapEnd(src, pos)
		if q < 0 || q >= len(src) {
			t.Fatalf("statement %d %q: nothing left in the input after offset %d", k, st.SQL, pos)
		}
		if !strings.HasSuffix(st.SQL, ";") || strings.Trim(st.SQL, sqlSpace) != st.SQL {
			t.Fatalf("statement %d %q is not trimmed or does not end in ';'", k, st.SQL)
		}
		body := st.SQL
		if !strings.HasPrefix(src[q:], body) {
			body = strings.TrimSuffix(body, ";")
			if k != len(got)-1 || !strings.HasPrefix(src[q:], body) {
				t.Fatalf("statement %d %q is not the input's text at offset %d: %q", k, st.SQL, q, src[q:])
			}
		}
		if want := 1 + strings.Count(src[:q], "\n"); st.Line != want {
			t.Fatalf("statement %d %q: line %d, want %d", k, st.SQL, st.Line, want)
		}
		if !IsComplete(st.SQL) {
			t.Fatalf("statement %d %q is not complete per IsComplete", k, st.SQL)
		}
		if !sqliteComplete(t, st.SQL) {
			t.Fatalf("statement %d %q is not complete per sqlite3_complete", k, st.SQL)
		}
		if len(st.SQL) < 4096 {
			for i := 0; i < len(st.SQL)-1; i++ {
				if st.SQL[i] == ';' && sqliteComplete(t, st.SQL[:i+1]) {
					t.Fatalf("statement %d %q: SQLite ends a statement at its ';' at offset %d", k, st.SQL, i)
				}
			}
		}
		pos = q + len(body)
	}
	if rest := gapEnd(src, pos); rest != len(src) {
		t.Fatalf("input text after the last statement was dropped: %q", src[pos:])
	}
}

func FuzzSplit(f *testing.F) {
	for _, s := range splitSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		got, err := SplitStatements(src)
		hasNUL := strings.IndexByte(src, 0) >= 0
		if !hasNUL {
			if IsComplete(src) != sqliteComplete(t, src) {
				t.Fatalf("IsComplete(%q) = %v, sqlite3_complete says %v", src, IsComplete(src), !IsComplete(src))
			}
			// The text splits cleanly exactly when SQLite sees it complete
			// once a ';' is added at the end.
			if want := sqliteComplete(t, src+"\n;"); (err == nil) != want {
				t.Fatalf("SplitStatements(%q) error %v, but sqlite3_complete(text+\";\") = %v", src, err, want)
			}
		}
		if err != nil {
			var se *syntaxError
			if !errors.As(err, &se) || se.Line < 1 || se.Line > 1+strings.Count(src, "\n") {
				t.Fatalf("SplitStatements(%q): bad error %#v", src, err)
			}
			if hasNUL != strings.Contains(err.Error(), "NUL") {
				t.Fatalf("SplitStatements(%q): error %v", src, err)
			}
			return
		}
		checkSplit(t, src, got)
	})
}

// TestSplitMatchesSQLitePrepare builds scripts from statements SQLite can
// prepare, joined by assorted separators and comments, and checks that the
// split finds as many statements as SQLite's own prepare loop (the way
// sqlite3_exec walks a script), and that SQLite reads each piece as exactly
// one statement.
func TestSplitMatchesSQLitePrepare(t *testing.T) {
	p := newSQLitePreparer(t, "CREATE TABLE t(a, \"b;c\", [d;e], \"end\");")
	fragments := []string{
		"SELECT 1",
		"SELECT 'a;b', 'it''s;'",
		`SELECT "b;c", [d;e], ` + "`d;e`" + ` FROM t`,
		"SELECT a -- a comment; with a semicolon\n FROM t",
		"SELECT /* ; */ a FROM t",
		"INSERT INTO t(a) VALUES ('x;y')",
		"CREATE TABLE u(x, y)",
		"CREATE TABLE trigger_log(\"end\", temp_x)",
		"EXPLAIN SELECT 1",
		"SELECT CASE WHEN a THEN 1 ELSE 2 END FROM t",
		"CREATE TRIGGER tr AFTER INSERT ON t BEGIN UPDATE t SET a = 1; DELETE FROM t WHERE a = ';'; END",
		"CREATE TEMP TRIGGER tr2 BEFORE DELETE ON t BEGIN SELECT CASE WHEN old.a THEN 1 END; END",
		"create temporary trigger tr3 after update on t for each row begin\n  insert into t(a) values (';');\n  -- END;\n  select 1;\nend",
		"EXPLAIN CREATE TRIGGER tr4 AFTER INSERT ON t BEGIN SELECT 1; END",
		"CREATE VIEW v AS SELECT a AS \"end\" FROM t",
		"SELECT \"end\" FROM t",
		"SELECT\t1\f+\r2",
	}
	seps := []string{";", ";\n", " ;", ";\n\n-- between; statements\n", "; /* ; */ ", ";;", ";\r\n", ";\n;\n"}
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 400 {
		var b strings.Builder
		n := r.IntN(6)
		if r.IntN(4) == 0 {
			b.WriteString("-- header; comment\n")
		}
		for j := range n {
			b.WriteString(fragments[r.IntN(len(fragments))])
			if j < n-1 || r.IntN(3) > 0 {
				b.WriteString(seps[r.IntN(len(seps))])
			}
		}
		if r.IntN(4) == 0 {
			b.WriteString("\n-- trailer")
		}
		src := b.String()
		got, err := SplitStatements(src)
		if err != nil {
			t.Fatalf("script %d %q: %v", i, src, err)
		}
		want, err := p.count(src)
		if err != nil {
			t.Fatalf("script %d %q: sqlite prepare: %v", i, src, err)
		}
		if len(got) != want || len(got) != n {
			t.Fatalf("script %d %q: split into %d statements, SQLite prepares %d, generated %d", i, src, len(got), want, n)
		}
		for _, st := range got {
			if c, err := p.count(st.SQL); err != nil || c != 1 {
				t.Fatalf("script %d: statement %q: SQLite prepares %d statements (%v)", i, st.SQL, c, err)
			}
		}
		checkSplit(t, src, got)
	}
}

func BenchmarkSplitStatements(b *testing.B) {
	src := strings.Repeat("CREATE TABLE t(a, b TEXT DEFAULT 'x;y'); -- c\nCREATE TRIGGER tr AFTER INSERT ON t BEGIN UPDATE t SET a = 1; END;\n", 100)
	b.SetBytes(int64(len(src)))
	for b.Loop() {
		if _, err := SplitStatements(src); err != nil {
			b.Fatal(err)
		}
	}
}
