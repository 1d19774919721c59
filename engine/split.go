package engine

import (
	"fmt"
	"strings"
)

// This file splits SQL text into statements the way SQLite reads it. The
// state machine is a port of sqlite3_complete() (SQLite's complete.c): a
// statement ends at a ';' that is not inside a string, a quoted identifier, a
// comment or the body of a CREATE [TEMP] TRIGGER ... BEGIN ... END.

// Tokens of the sqlite3_complete() state machine.
const (
	tkSEMI    = iota // ';'
	tkWS             // whitespace and comments
	tkOTHER          // any other token
	tkEXPLAIN        // EXPLAIN
	tkCREATE         // CREATE
	tkTEMP           // TEMP, TEMPORARY
	tkTRIGGER        // TRIGGER
	tkEND            // END
)

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

// sqlIDChar reports the bytes SQLite allows in unquoted identifiers and
// keywords (IdChar: sqlite3CtypeMap[c]&0x46): ASCII letters and digits, '_',
// '$' and every byte >= 0x80.
func sqlIDChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '_' || c == '$' || c >= 0x80
}

// sqlToken is one token of the state machine.
type sqlToken struct {
	kind       int
	start, end int  // byte offsets in the source
	line       int  // line of start
	comment    bool // a -- or /* */ comment (kind tkWS)
}

// sqlLexer cuts SQL text into the tokens of sqlite3_complete(), counting
// lines.
type sqlLexer struct {
	src  string
	pos  int
	line int
}

// syntaxError is an unterminated string, identifier, comment or trigger, or
// a NUL byte, at a line of the text.
type syntaxError struct {
	Line int
	Msg  string
}

func (e *syntaxError) Error() string { return fmt.Sprintf("line %d: %s", e.Line, e.Msg) }

// next returns the next token; ok is false at the end of the text.
func (l *sqlLexer) next() (tok sqlToken, ok bool, err error) {
	src := l.src
	if l.pos >= len(src) {
		return sqlToken{}, false, nil
	}
	start, line := l.pos, l.line
	i := l.pos
	c := src[i]
	kind := tkOTHER
	comment := false
	switch {
	case c == ';':
		kind = tkSEMI
		i++
	case c == ' ' || c == '\r' || c == '\t' || c == '\n' || c == '\f':
		kind = tkWS
		i++
	case c == '/' && i+1 < len(src) && src[i+1] == '*':
		end := strings.Index(src[i+2:], "*/")
		if end < 0 {
			return sqlToken{}, false, &syntaxError{line, "unterminated /* comment: close it with */"}
		}
		i += 2 + end + 2
		kind, comment = tkWS, true
	case c == '-' && i+1 < len(src) && src[i+1] == '-':
		end := strings.IndexByte(src[i:], '\n')
		if end < 0 {
			i = len(src)
		} else {
			i += end // the newline is a token of its own
		}
		kind, comment = tkWS, true
	case c == '[':
		end := strings.IndexByte(src[i+1:], ']')
		if end < 0 {
			return sqlToken{}, false, &syntaxError{line, "unterminated [identifier]: close it with ]"}
		}
		i += 1 + end + 1
	case c == '`' || c == '"' || c == '\'':
		end := strings.IndexByte(src[i+1:], c)
		if end < 0 {
			what := "quoted identifier"
			if c == '\'' {
				what = "string literal"
			}
			return sqlToken{}, false, &syntaxError{line, fmt.Sprintf("unterminated %s: the %c opened here is never closed (write %c%c for a %c inside it)", what, c, c, c, c)}
		}
		i += 1 + end + 1
	case c == 0:
		return sqlToken{}, false, &syntaxError{line, "NUL byte in SQL text: remove it"}
	case sqlIDChar(c):
		for i++; i < len(src) && sqlIDChar(src[i]); i++ {
		}
		kind = keywordToken(src[start:i])
	default:
		i++ // operators and other symbols
	}
	l.line += strings.Count(src[start:i], "\n")
	l.pos = i
	return sqlToken{kind: kind, start: start, end: i, line: line, comment: comment}, true, nil
}

// keywordToken classifies an identifier-like word.
func keywordToken(w string) int {
	switch len(w) {
	case 3:
		if strings.EqualFold(w, "end") {
			return tkEND
		}
	case 4:
		if strings.EqualFold(w, "temp") {
			return tkTEMP
		}
	case 6:
		if strings.EqualFold(w, "create") {
			return tkCREATE
		}
	case 7:
		if strings.EqualFold(w, "trigger") {
			return tkTRIGGER
		}
		if strings.EqualFold(w, "explain") {
			return tkEXPLAIN
		}
	case 9:
		if strings.EqualFold(w, "temporary") {
			return tkTEMP
		}
	}
	return tkOTHER
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
	l := sqlLexer{src: sql, line: 1}
	state := uint8(0)
	for {
		tok, ok, err := l.next()
		if err != nil {
			return false
		}
		if !ok {
			return state == 1
		}
		state = completeTrans[state][tok.kind]
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
		return nil, &syntaxError{firstLine + strings.Count(src[:i], "\n"), "NUL byte in SQL text: remove it"}
	}
	var out []Statement
	l := sqlLexer{src: src, line: firstLine}
	state := uint8(0)
	stmtStart, stmtLine, lastEnd := -1, 0, 0
	for {
		tok, ok, err := l.next()
		if err != nil {
			return nil, err
		}
		if !ok {
			break
		}
		if tok.kind == tkWS {
			continue // whitespace and comments never change the state
		}
		if stmtStart < 0 {
			if tok.kind == tkSEMI {
				state = 1 // an empty statement
				continue
			}
			stmtStart, stmtLine = tok.start, tok.line
		}
		state = completeTrans[state][tok.kind]
		lastEnd = tok.end
		if tok.kind == tkSEMI && state == 1 {
			out = append(out, Statement{SQL: src[stmtStart:tok.end], Line: stmtLine})
			stmtStart = -1
		}
	}
	if stmtStart >= 0 {
		if completeTrans[state][tkSEMI] != 1 {
			return nil, &syntaxError{stmtLine, "unterminated CREATE TRIGGER statement: its body must end with \"END;\""}
		}
		out = append(out, Statement{SQL: src[stmtStart:lastEnd] + ";", Line: stmtLine})
	}
	return out, nil
}
