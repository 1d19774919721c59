package engine

import (
	"errors"
	"fmt"
	"strings"

	"github.com/shoal-dev/shoal/internal/sqltext"
)

// A .sql migration is either one up section (the whole file) or
// dbmate-style sections:
//
//	-- migrate:up
//	CREATE TABLE users (id INTEGER PRIMARY KEY);
//
//	-- migrate:down
//	DROP TABLE users;
//
// A marker may carry the directive transaction:false, which runs that
// section outside any transaction (`-- migrate:up transaction:false`).

// sectionMarker is one `-- migrate:up|down` line.
type sectionMarker struct {
	down       bool
	noTx       bool
	line       int
	start, end int // the marker comment's bytes (end excludes the newline)
}

// markerError is a malformed section marker at a line.
type markerError struct {
	line int
	msg  string
}

func (e *markerError) Error() string { return fmt.Sprintf("line %d: %s", e.line, e.msg) }

// parseSQLMigration splits the normalised text of a .sql file into its
// sections and statements and sets m.Up, m.Down, m.UpNoTx, m.DownNoTx,
// m.HasDown and m.Kind. Problems are a *DirError naming m.File and the line.
func parseSQLMigration(dirName string, m *Migration, text string) error {
	fail := func(line int, format string, args ...any) error {
		reason := fmt.Sprintf(format, args...)
		if line > 0 {
			reason = fmt.Sprintf("line %d: %s", line, reason)
		}
		return &DirError{Dir: dirName, File: m.File, Reason: reason}
	}
	wrap := func(err error) error {
		var se *syntaxError
		var me *markerError
		switch {
		case errors.As(err, &se):
			return fail(se.Line, "%s", se.Msg)
		case errors.As(err, &me):
			return fail(me.line, "%s", me.msg)
		}
		return fail(0, "%v", err)
	}

	markers, err := findSectionMarkers(text)
	if err != nil {
		return wrap(err)
	}
	m.Up, m.Down, m.UpNoTx, m.DownNoTx, m.HasDown, m.Kind = nil, nil, false, false, false, KindSQL

	if len(markers) == 0 {
		up, err := splitSQL(text, 1)
		if err != nil {
			return wrap(err)
		}
		m.Up = up
		return checkTxControl(dirName, m)
	}

	var up, down *sectionMarker
	for i := range markers {
		mk := &markers[i]
		switch {
		case !mk.down && up != nil:
			return fail(mk.line, "a second \"-- migrate:up\" (the first is on line %d): a file has one up section; remove one of them", up.line)
		case mk.down && down != nil:
			return fail(mk.line, "a second \"-- migrate:down\" (the first is on line %d): a file has one down section; remove one of them", down.line)
		case mk.down && up == nil:
			return fail(mk.line, "\"-- migrate:down\" comes before \"-- migrate:up\": put the up section first")
		case mk.down:
			down = mk
		default:
			up = mk
		}
	}

	// Nothing but whitespace and comments may come before the up marker.
	before, err := splitSQL(text[:up.start], 1)
	if err != nil {
		return wrap(err)
	}
	if len(before) > 0 {
		return fail(before[0].Line, "SQL before \"-- migrate:up\" (line %d) belongs to no section: move it below the marker", up.line)
	}

	upEnd := len(text)
	if down != nil {
		upEnd = down.start
	}
	upStmts, err := splitSQL(text[up.end:upEnd], up.line)
	if err != nil {
		return wrap(err)
	}
	m.Up, m.UpNoTx = upStmts, up.noTx
	if down != nil {
		downStmts, err := splitSQL(text[down.end:], down.line)
		if err != nil {
			return wrap(err)
		}
		if downStmts == nil {
			downStmts = []Statement{} // an empty down section is still a down section
		}
		m.Down, m.DownNoTx, m.HasDown = downStmts, down.noTx, true
	}
	if m.UpNoTx {
		m.Kind = KindSQLNoTx
	}
	return checkTxControl(dirName, m)
}

// txControl lists the statements that begin, end or nest a transaction.
var txControl = map[string]bool{"BEGIN": true, "COMMIT": true, "END": true, "ROLLBACK": true, "SAVEPOINT": true, "RELEASE": true}

// firstWord is the first keyword of a statement, upper case: its first
// token when that is a bare word, else "". Statements start at their first
// token, so a comment, a string or a quoted identifier is never taken for
// it, and a CREATE TRIGGER ... BEGIN ... END is one statement starting with
// CREATE.
func firstWord(sql string) string {
	i := 0
	for i < len(sql) && sqltext.IDChar(sql[i]) {
		i++
	}
	return strings.ToUpper(sql[:i])
}

// checkTxControl refuses transaction control in the sections shoal runs
// inside its own transaction: a COMMIT there would commit half a run, a
// ROLLBACK discard the earlier migrations of the segment. A section marked
// transaction:false may keep them.
func checkTxControl(dirName string, m *Migration) error {
	check := func(stmts []Statement, section string) error {
		for _, st := range stmts {
			if w := firstWord(st.SQL); txControl[w] {
				return &DirError{Dir: dirName, File: m.File, Kind: ErrTxControl,
					Reason: fmt.Sprintf("line %d: %s in the %s section, which shoal runs inside its own transaction: "+
						"remove it (each run commits its migrations together, or rolls them all back), or mark the section "+
						"\"-- migrate:%s transaction:false\" to run it outside a transaction", st.Line, w, section, section)}
			}
		}
		return nil
	}
	if !m.UpNoTx {
		if err := check(m.Up, "up"); err != nil {
			return err
		}
	}
	if m.HasDown && !m.DownNoTx {
		return check(m.Down, "down")
	}
	return nil
}

// findSectionMarkers returns the `-- migrate:` markers of text in order. A
// marker is a -- comment that starts its line (after optional blanks)
// outside strings and block comments. A comment that looks like a marker but
// is malformed ("-- migrate:Up", "-- migrate: up", "-- migrate:upp",
// "-- migrate:up transaction:no") is an error, so that a typo can never turn
// a down section into part of the up section.
func findSectionMarkers(text string) ([]sectionMarker, error) {
	var out []sectionMarker
	l := sqltext.NewLexer(text, 1)
	for {
		tok, ok, err := l.Next()
		if err != nil {
			return nil, err
		}
		if !ok {
			return out, nil
		}
		if !tok.Comment || !strings.HasPrefix(text[tok.Start:tok.End], "--") || !startsLine(text, tok.Start) {
			continue
		}
		mk, isMarker, err := parseMarker(text[tok.Start:tok.End], tok.Line)
		if err != nil {
			return nil, err
		}
		if isMarker {
			mk.start, mk.end = tok.Start, tok.End
			out = append(out, mk)
		}
	}
}

// startsLine reports whether only blanks precede offset i on its line.
func startsLine(text string, i int) bool {
	for i > 0 {
		i--
		switch text[i] {
		case '\n':
			return true
		case ' ', '\t', '\r', '\f':
		default:
			return false
		}
	}
	return true
}

// parseMarker parses one -- comment that starts a line: isMarker is false
// for ordinary comments.
func parseMarker(comment string, line int) (mk sectionMarker, isMarker bool, err error) {
	body := strings.TrimLeft(comment[2:], " \t\r\f")
	const word = "migrate"
	if len(body) < len(word) || !strings.EqualFold(body[:len(word)], word) {
		return sectionMarker{}, false, nil
	}
	if !strings.HasPrefix(strings.TrimLeft(body[len(word):], " \t"), ":") {
		return sectionMarker{}, false, nil // an ordinary comment ("-- migrate users to ...")
	}
	bad := func(why string) error {
		return &markerError{line, fmt.Sprintf("malformed section marker %q (%s): write \"-- migrate:up\" or \"-- migrate:down\", optionally followed by transaction:false", strings.TrimSpace(comment), why)}
	}
	if !strings.HasPrefix(body, word+":") {
		return sectionMarker{}, false, bad("\"migrate:\" is lower case with no blanks")
	}
	rest := body[len(word)+1:]
	fields := strings.Fields(rest)
	if len(fields) == 0 || !strings.HasPrefix(rest, fields[0]) {
		return sectionMarker{}, false, bad("the section name must follow the colon")
	}
	mk.line = line
	switch fields[0] {
	case "up":
	case "down":
		mk.down = true
	default:
		return sectionMarker{}, false, bad(fmt.Sprintf("unknown section %q", fields[0]))
	}
	seen := map[string]bool{}
	for _, d := range fields[1:] {
		key, _, _ := strings.Cut(d, ":")
		if seen[key] {
			return sectionMarker{}, false, &markerError{line, fmt.Sprintf("directive %q given twice after \"-- migrate:%s\": keep one", key, fields[0])}
		}
		seen[key] = true
		switch d {
		case "transaction:false":
			mk.noTx = true
		case "transaction:true":
		default:
			return sectionMarker{}, false, &markerError{line, fmt.Sprintf("unknown directive %q after \"-- migrate:%s\": the only directive is transaction:false; remove it or fix its spelling", d, fields[0])}
		}
	}
	return mk, true, nil
}
