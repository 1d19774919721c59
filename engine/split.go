package engine

import (
	"strings"

	"github.com/shoal-dev/shoal/internal/sqltext"
)

// This file splits SQL text into statements the way SQLite reads it. The
// state machine is a port of sqlite3_complete() (SQLite's complete.c): a
// statement ends at a ';' that is not inside a string, a quoted identifier, a
// comment or the body of a CREATE [TEMP] TRIGGER ... BEGIN ... END.

// syntaxError is an unterminated string, identifier, comment or trigger,
// or a NUL byte, at a line of the text.
type syntaxError = sqltext.SyntaxError

// completeTrans is the transition table of sqlite3_complete(), indexed by
// state and token. States:
//
//	0 NOTHING  nothing but whitespace seen yet
//	1 START    at the start or end of a statement
//	2 NORMAL   in a statement ended by a single ';'
//	3 EXPLAIN  EXPLAIN seen at the start of a statement
//	4 CREATE   CREATE seen, possibly after EXPLAIN, or followed by TEMP
//	5 TRIGGER  in a trigger definition, ended by ";END;"
//	6 SEMI     seen the ';' of ";END;"
//	7 END      seen the ";END" of ";END;"
var completeTrans = [8][8]uint8{
	/*              SEMI WS OTHER EXPLAIN CREATE TEMP TRIGGER END */
	/* 0 NOTHING */ {1, 0, 2, 3, 4, 2, 2, 2},
	/* 1 START   */ {1, 1, 2, 3, 4, 2, 2, 2},
	/* 2 NORMAL  */ {1, 2, 2, 2, 2, 2, 2, 2},
	/* 3 EXPLAIN */ {1, 3, 3, 2, 4, 2, 2, 2},
	/* 4 CREATE  */ {1, 4, 2, 2, 2, 4, 5, 2},
	/* 5 TRIGGER */ {6, 5, 5, 5, 5, 5, 5, 5},
	/* 6 SEMI    */ {6, 6, 5, 5, 5, 5, 5, 7},
	/* 7 END     */ {1, 7, 5, 5, 5, 5, 5, 5},
}

// IsComplete reports whether sql ends with a complete SQL statement, like
// sqlite3_complete() in its classic form: true when the text ends in a ';'
// that is not inside a string, quoted identifier, comment or trigger body,
// optionally followed by whitespace and comments. Text that is empty,
// whitespace or comments only is not complete. Like the C function, it stops
// at a NUL byte.
func IsComplete(sql string) bool {
	if i := strings.IndexByte(sql, 0); i >= 0 {
		sql = sql[:i]
	}
	l := sqltext.NewLexer(sql, 1)
	state := uint8(0)
	for {
		tok, ok, err := l.Next()
		if err != nil {
			return false
		}
		if !ok {
			return state == 1
		}
		state = completeTrans[state][tok.Kind]
	}
}

// SplitStatements splits SQL text into statements the way SQLite reads it:
// a statement ends at a ';' outside strings and quoted identifiers ('...',
// "...", `...`, [...]), comments (-- and /* */) and trigger bodies
// (CREATE [TEMP] TRIGGER ... BEGIN ...; END;).
//
// Each Statement's SQL runs from its first token to its ';' (comments inside
// it are kept; whitespace and comments between statements are not), and Line
// is the 1-based line of its first token. Empty statements (a lone ';') are
// dropped, so whitespace- or comment-only text yields no statements. A final
// statement without ';' is still a statement and gets one. An unterminated
// string, identifier, comment or trigger body, or a NUL byte, is an error
// naming its line.
func SplitStatements(src string) ([]Statement, error) {
	return splitSQL(src, 1)
}

// splitSQL is SplitStatements for text that starts at line firstLine of a
// file.
func splitSQL(src string, firstLine int) ([]Statement, error) {
	if i := strings.IndexByte(src, 0); i >= 0 {
		return nil, &sqltext.SyntaxError{Line: firstLine + strings.Count(src[:i], "\n"), Msg: "NUL byte in SQL text: remove it"}
	}
	var out []Statement
	l := sqltext.NewLexer(src, firstLine)
	state := uint8(0)
	stmtStart, stmtLine, lastEnd := -1, 0, 0
	for {
		tok, ok, err := l.Next()
		if err != nil {
			return nil, err
		}
		if !ok {
			break
		}
		if tok.Kind == sqltext.WS {
			continue // whitespace and comments never change the state
		}
		if stmtStart < 0 {
			if tok.Kind == sqltext.Semi {
				state = 1 // an empty statement
				continue
			}
			stmtStart, stmtLine = tok.Start, tok.Line
		}
		state = completeTrans[state][tok.Kind]
		lastEnd = tok.End
		if tok.Kind == sqltext.Semi && state == 1 {
			out = append(out, Statement{SQL: src[stmtStart:tok.End], Line: stmtLine})
			stmtStart = -1
		}
	}
	if stmtStart >= 0 {
		if completeTrans[state][sqltext.Semi] != 1 {
			return nil, &sqltext.SyntaxError{Line: stmtLine, Msg: "unterminated CREATE TRIGGER statement: its body must end with \"END;\""}
		}
		out = append(out, Statement{SQL: src[stmtStart:lastEnd] + ";", Line: stmtLine})
	}
	return out, nil
}
