package schema

import (
	"sort"
	"strings"
	"testing"

	"github.com/shoal-dev/shoal/engine"
)

// lintCodes runs Check on files and returns "file:code" for each finding.
func lintCodes(t *testing.T, files map[string]string) []string {
	t.Helper()
	rep, err := Check(ctx(t), CheckOptions{Options: engine.Options{Dir: dir(files), DirName: "test"}, NoRoundTrip: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Problems) > 0 {
		t.Fatalf("problems: %+v", rep.Problems)
	}
	out := []string{}
	for _, f := range rep.Lint {
		if f.Fix == "" || f.Message == "" || f.Line == 0 {
			t.Errorf("finding without fix, message or line: %+v", f)
		}
		out = append(out, f.File+":"+f.Code)
	}
	sort.Strings(out)
	return out
}

const usersNotes = `CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT, nick TEXT);
CREATE TABLE notes (id INTEGER PRIMARY KEY, user_id INTEGER REFERENCES users(id) ON DELETE CASCADE, body TEXT);
`

func TestLintCodes(t *testing.T) {
	cases := []struct {
		name  string
		files map[string]string
		want  []string
	}{
		{"clean", map[string]string{"0001_a.sql": usersNotes}, []string{}},
		{"SH001 drop table", map[string]string{"0001_a.sql": usersNotes, "0002_b.sql": "DROP TABLE notes;"}, []string{"0002_b.sql:SH001"}},
		{"SH001 not for a rebuild", map[string]string{"0001_a.sql": usersNotes, "0002_b.sql": `CREATE TABLE users_new (id INTEGER PRIMARY KEY, email TEXT NOT NULL DEFAULT '', nick TEXT);
INSERT INTO users_new SELECT id, coalesce(email, ''), nick FROM users;
DROP TABLE users;
ALTER TABLE users_new RENAME TO users;`}, []string{}},
		{"SH001 not for a table created in the same migration", map[string]string{"0001_a.sql": "CREATE TABLE tmp (x); DROP TABLE tmp;"}, []string{}},
		{"SH001 not in strings or comments", map[string]string{"0001_a.sql": usersNotes + "-- DROP TABLE users;\n/* DROP TABLE notes; */\nINSERT INTO users (email) VALUES ('DROP TABLE users; DROP COLUMN x');"}, []string{}},
		{"SH001 not for a table that does not exist", map[string]string{"0001_a.sql": usersNotes + "DROP TABLE IF EXISTS legacy_tmp;"}, []string{}},
		{"SH001 silenced", map[string]string{"0001_a.sql": usersNotes, "0002_b.sql": "-- shoal:allow SH001\nDROP TABLE notes;"}, []string{}},
		{"SH001 down section is not linted", map[string]string{"0001_a.sql": "-- migrate:up\n" + usersNotes + "-- migrate:down\nDROP TABLE notes;\nDROP TABLE users;\n"}, []string{}},
		{"SH002 drop column", map[string]string{"0001_a.sql": usersNotes, "0002_b.sql": "ALTER TABLE users DROP COLUMN nick;"}, []string{"0002_b.sql:SH002"}},
		{"SH002 rebuild leaving a column out", map[string]string{"0001_a.sql": usersNotes, "0002_b.sql": `CREATE TABLE users_new (id INTEGER PRIMARY KEY, email TEXT);
INSERT INTO users_new SELECT id, email FROM users;
DROP TABLE users;
ALTER TABLE users_new RENAME TO users;`}, []string{"0002_b.sql:SH002"}},
		{"SH002 not for a rename", map[string]string{"0001_a.sql": usersNotes, "0002_b.sql": "ALTER TABLE users RENAME COLUMN nick TO handle;"}, []string{}},
		{"SH003 rebuild outside a transaction", map[string]string{"0001_a.sql": usersNotes, "0002_b.sql": `-- migrate:up transaction:false
CREATE TABLE users_new (id INTEGER PRIMARY KEY, email TEXT, nick TEXT NOT NULL DEFAULT '');
INSERT INTO users_new SELECT id, email, coalesce(nick, '') FROM users;
DROP TABLE users;
ALTER TABLE users_new RENAME TO users;`}, []string{"0002_b.sql:SH003"}},
		{"SH003 not inside the run", map[string]string{"0001_a.sql": usersNotes, "0002_b.sql": `CREATE TABLE users_new (id INTEGER PRIMARY KEY, email TEXT, nick TEXT NOT NULL DEFAULT '');
INSERT INTO users_new SELECT id, email, coalesce(nick, '') FROM users;
DROP TABLE users;
ALTER TABLE users_new RENAME TO users;`}, []string{}},
		{"SH004 pragmas in a transaction", map[string]string{"0001_a.sql": usersNotes + "PRAGMA foreign_keys = ON;\nPRAGMA main.journal_mode=WAL;\nPRAGMA foreign_keys;"}, []string{"0001_a.sql:SH004", "0001_a.sql:SH004"}},
		{"SH004 not outside one", map[string]string{"0001_a.sql": "-- migrate:up transaction:false\nPRAGMA journal_mode = WAL;"}, []string{}},
		{"SH005 dropped column used by a trigger", map[string]string{"0001_a.sql": usersNotes + "CREATE TRIGGER touch AFTER INSERT ON notes BEGIN UPDATE users SET nick = 'x' WHERE id = NEW.user_id; END;", "0002_b.sql": "ALTER TABLE users DROP COLUMN nick;"}, []string{"0002_b.sql:SH002", "0002_b.sql:SH005"}},
		{"SH005 not when the trigger is recreated", map[string]string{"0001_a.sql": usersNotes + "CREATE TRIGGER touch AFTER INSERT ON notes BEGIN UPDATE users SET nick = 'x' WHERE id = NEW.user_id; END;", "0002_b.sql": "DROP TRIGGER touch;\nALTER TABLE users DROP COLUMN nick;\nCREATE TRIGGER touch AFTER INSERT ON notes BEGIN UPDATE users SET email = 'x' WHERE id = NEW.user_id; END;"}, []string{"0002_b.sql:SH002"}},
		{"SH006 if not exists", map[string]string{"0001_a.sql": "CREATE TABLE IF NOT EXISTS a (x);\nCREATE INDEX IF NOT EXISTS ax ON a(x);"}, []string{"0001_a.sql:SH006", "0001_a.sql:SH006"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := lintCodes(t, tc.files)
			if strings.Join(got, " ") != strings.Join(tc.want, " ") {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestLintSeverityAndStrict(t *testing.T) {
	files := map[string]string{"0001_a.sql": usersNotes, "0002_b.sql": "DROP TABLE notes;"}
	rep, err := Check(ctx(t), CheckOptions{Options: engine.Options{Dir: dir(files)}})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK || len(rep.Lint) != 1 || rep.Lint[0].Severity != SeverityWarning || rep.Lint[0].Line != 1 {
		t.Fatalf("a destructive change is a warning by default: %+v", rep)
	}
	rep, _ = Check(ctx(t), CheckOptions{Options: engine.Options{Dir: dir(files)}, Strict: true})
	if rep.OK {
		t.Fatal("--strict must fail on a warning")
	}
	rep, _ = Check(ctx(t), CheckOptions{Options: engine.Options{Dir: dir(map[string]string{"0001_a.sql": "\n\nCREATE TABLE IF NOT EXISTS a (x);"})}})
	if rep.OK || rep.Lint[0].Code != LintIfNotExists || rep.Lint[0].Line != 3 {
		t.Fatalf("SH006 is an error, on line 3: %+v", rep)
	}
}

func TestTokenize(t *testing.T) {
	toks := tokenize("DROP TABLE [my table]; -- DROP TABLE x\n SELECT 'a''b', \"q\"\"x\", `b`", 1)
	var got []string
	for _, tk := range toks {
		got = append(got, tk.Val)
	}
	want := []string{"drop", "table", "my table", ";", "select", "'a''b'", ",", `q"x`, ",", "b"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("got %q", got)
	}
	if toks[4].Line != 2 {
		t.Fatalf("line %d", toks[4].Line)
	}
}

// FuzzLint: lint never panics on any SQL the loader accepts, and
// unquoteCreateName keeps the statement's canonical form otherwise intact.
func FuzzLint(f *testing.F) {
	for _, s := range []string{usersNotes, "DROP TABLE", "ALTER TABLE t DROP", "ALTER TABLE", "PRAGMA x.", "CREATE TABLE IF NOT", "INSERT INTO x SELECT * FROM", `CREATE TABLE "a""b"(x)`, "CREATE TRIGGER t AFTER INSERT ON a BEGIN SELECT 1; END;"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		e, err := engine.New(engine.Options{Dir: dir(map[string]string{"0001_f.sql": text}), DirName: "fuzz"})
		if err != nil || len(e.Migrations()) != 1 {
			return
		}
		m := e.Migrations()[0]
		lintMigration(&m, text, nil)
		for _, s := range m.Up {
			analyze(s)
			u := unquoteCreateName(engine.NormalizeSQL(s.SQL))
			tableDefs(u)
		}
	})
}
