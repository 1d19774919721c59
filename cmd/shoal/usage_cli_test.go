package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestEmbeddedMigrationsSaySo: with no ./migrations and no --dir, every
// command on the embedded example migrations says so on stderr (after its
// error line, which stays first), `check` fails, and `new` says how to
// create the directory once.
func TestEmbeddedMigrationsSaySo(t *testing.T) {
	t.Parallel()
	d := t.TempDir()
	const notice = "shoal: using the embedded example migrations"
	db := filepath.Join(d, "t.db")
	for _, args := range [][]string{{"migrate", "--db", db}, {"status", "--db", db}, {"schema"}} {
		if o := shoal(t, d, nil, args...); o.code != 0 || !strings.Contains(o.stderr, notice) {
			t.Errorf("%v: %+v", args, o)
		}
	}
	o := shoal(t, d, nil, "check")
	if o.code != 1 || !strings.HasPrefix(o.stderr, "shoal: no migrations directory to check") {
		t.Errorf("check without a directory: %+v", o)
	}
	o = shoal(t, d, nil, "new", "add_users")
	if o.code != 1 || strings.Count(o.stderr, "create it") != 1 || strings.Contains(o.stderr, "((") {
		t.Errorf("new without a directory: %+v", o)
	}
	// a directory of one's own: no notice
	writeFiles(t, d, map[string]string{"migrations/0001_a.sql": "CREATE TABLE a (x);\n"})
	if o := shoal(t, d, nil, "migrate", "--db", filepath.Join(d, "u.db")); o.code != 0 || strings.Contains(o.stderr, notice) {
		t.Errorf("with ./migrations: %+v", o)
	}
	if o := shoal(t, d, nil, "check"); o.code != 0 {
		t.Errorf("check with ./migrations: %+v", o)
	}
}

// TestUsageErrorsCLI: flag problems exit 2 with one line; global flags are
// validated for every command and pointed to their place; extra arguments
// are refused; a typo gets the closest command.
func TestUsageErrorsCLI(t *testing.T) {
	t.Parallel()
	d := t.TempDir()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"migrate", "--db"}, "flag needs an argument"},
		{[]string{"--log-level", "verbose", "status", "--db", "x.db"}, `invalid --log-level "verbose"`},
		{[]string{"--log-format", "text", "schema"}, `invalid --log-format "text"`},
		{[]string{"--log-format", "text", "new", "x"}, `invalid --log-format "text"`},
		{[]string{"status", "--db", "x.db", "extra"}, `shoal status takes no arguments, got "extra"`},
		{[]string{"fleet", "status", "--root", d, "extra"}, `shoal fleet status takes no arguments, got "extra"`},
		{[]string{"migrate", "--db", "x.db", "--log-format", "console"}, "--log-format is a global flag: put it before the command, e.g. `shoal --log-format VALUE migrate ...`"},
		{[]string{"migrat"}, `unknown command "migrat": did you mean "migrate"?`},
		{[]string{"fleet", "statu"}, `unknown command "statu": did you mean "status"?`},
		{[]string{"migrate", "--nope"}, "migrate: flag provided but not defined: --nope"},
	} {
		o := shoal(t, d, nil, tc.args...)
		first := strings.SplitN(o.stderr, "\n", 2)[0]
		if o.code != 2 || !strings.HasPrefix(first, "shoal: ") || !strings.Contains(first, tc.want) || o.stdout != "" {
			t.Errorf("%v: exit %d, first line %q (want %q), stdout %q", tc.args, o.code, first, tc.want, o.stdout)
		}
	}
	if _, err := os.Stat(filepath.Join(d, "x.db")); err == nil {
		t.Error("a usage error created the DB")
	}
}

// TestHelpTextCLI reviews every command's --help: no default shown twice,
// no "(default: false)", required flags marked, `down --to` without a
// default, `migrate --to` saying 0 is head.
func TestHelpTextCLI(t *testing.T) {
	t.Parallel()
	d := t.TempDir()
	top := shoal(t, d, nil, "--help")
	cmds := [][]string{}
	for _, m := range regexp.MustCompile(`(?m)^   (?:  )?([a-z-]+)(?:, [a-z]+)?\s{2,}`).FindAllStringSubmatch(top.stdout, -1) {
		if m[1] == "help" {
			continue
		}
		cmds = append(cmds, []string{m[1]})
	}
	cmds = append(cmds, []string{"fleet", "status"}, []string{"fleet", "enroll"}, []string{"nats", "setup"})
	if len(cmds) < 20 {
		t.Fatalf("only %d commands in --help:\n%s", len(cmds), top.stdout)
	}
	twice := regexp.MustCompile(`\(default: [^)]*\).*\(default: `)
	for _, c := range cmds {
		o := shoal(t, d, nil, append(c, "--help")...)
		if o.code != 0 {
			t.Errorf("%v --help: %+v", c, o)
			continue
		}
		for _, line := range strings.Split(o.stdout, "\n") {
			if twice.MatchString(line) || strings.Contains(line, "(default: false)") {
				t.Errorf("%v --help: %q", c, line)
			}
		}
	}
	help := func(args ...string) string { return shoal(t, d, nil, append(args, "--help")...).stdout }
	for _, c := range [][]string{{"migrate"}, {"status"}, {"down"}, {"backup"}} {
		if !regexp.MustCompile(`--db value\s+.*\(required\)`).MatchString(help(c...)) {
			t.Errorf("%v: --db not marked required", c)
		}
	}
	for _, c := range [][]string{{"run"}, {"produce"}, {"fleet", "status"}} {
		if !regexp.MustCompile(`--root value\s+.*\(required\)`).MatchString(help(c...)) {
			t.Errorf("%v: --root not marked required", c)
		}
	}
	if h := help("down"); !regexp.MustCompile(`--to value\s+.*\(required\)\n`).MatchString(h) {
		t.Errorf("down --to: %s", h)
	}
	if h := help("migrate"); !strings.Contains(h, "0 is the same as not giving it: head") || !strings.Contains(h, "(default: head)") {
		t.Errorf("migrate --to: %s", h)
	}
}

// TestVersionCLI: --version names the module version and, for a binary
// built from a git checkout with VCS stamping, the revision.
func TestVersionCLI(t *testing.T) {
	t.Parallel()
	o := shoal(t, t.TempDir(), nil, "--version")
	if o.code != 0 || !strings.HasPrefix(o.stdout, "shoal version ") || strings.Contains(o.stdout, "version dev") {
		t.Fatalf("%+v", o)
	}
	rev, err := exec.Command("git", "rev-parse", "HEAD").Output()
	if err != nil {
		t.Skip("not a git checkout: no revision to compare with")
	}
	top, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	if st, serr := os.Stat(filepath.Join(strings.TrimSpace(string(top)), ".git")); err != nil || serr != nil || !st.IsDir() {
		t.Skip("a git worktree (.git is a file): the go command stamps VCS information only in a checkout with a .git directory")
	}
	bin := filepath.Join(t.TempDir(), "shoal")
	cmd := exec.Command("go", "build", "-buildvcs=true", "-o", bin, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "--version").Output()
	if err != nil || !strings.Contains(string(out), "(rev "+strings.TrimSpace(string(rev))[:12]) {
		t.Fatalf("--version %q, want revision %s (%v)", out, rev, err)
	}
}
