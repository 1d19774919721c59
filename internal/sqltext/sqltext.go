// Package sqltext cuts SQL text into the tokens SQLite's
// sqlite3_complete() state machine knows, and normalises migration text
// (BOM, CRLF). Shared by the engine (statement splitting, section markers)
// and the schema tooling (lint); no database access.
package sqltext

import (
	"bytes"
	"fmt"
	"strings"
)

// Tokens of the sqlite3_complete() state machine.
const (
	Semi    = iota // ';'
	WS             // whitespace and comments
	Other          // any other token
	Explain        // EXPLAIN
	Create         // CREATE
	Temp           // TEMP, TEMPORARY
	Trigger        // TRIGGER
	End            // END
)

// IDChar reports the bytes SQLite allows in unquoted identifiers and
// keywords (IdChar: sqlite3CtypeMap[c]&0x46): ASCII letters and digits, '_',
// '$' and every byte >= 0x80.
func IDChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '_' || c == '$' || c >= 0x80
}

// Token is one token of the state machine.
type Token struct {
	Kind       int  // Semi, WS, Other, ...
	Start, End int  // byte offsets in the source
	Line       int  // line of start
	Comment    bool // a -- or /* */ comment (kind WS)
}

// Lexer cuts SQL text into the tokens of sqlite3_complete(), counting
// lines.
type Lexer struct {
	src  string
	pos  int
	line int
}

// NewLexer returns a lexer over src whose first line is line firstLine.
func NewLexer(src string, firstLine int) *Lexer { return &Lexer{src: src, line: firstLine} }

// SyntaxError is an unterminated string, identifier, comment or trigger, or
// a NUL byte, at a line of the text.
type SyntaxError struct {
	Line int
	Msg  string
}

func (e *SyntaxError) Error() string { return fmt.Sprintf("line %d: %s", e.Line, e.Msg) }

// next returns the next token; ok is false at the end of the text.
func (l *Lexer) Next() (tok Token, ok bool, err error) {
	src := l.src
	if l.pos >= len(src) {
		return Token{}, false, nil
	}
	start, line := l.pos, l.line
	i := l.pos
	c := src[i]
	kind := Other
	comment := false
	switch {
	case c == ';':
		kind = Semi
		i++
	case c == ' ' || c == '\r' || c == '\t' || c == '\n' || c == '\f':
		kind = WS
		i++
	case c == '/' && i+1 < len(src) && src[i+1] == '*':
		end := strings.Index(src[i+2:], "*/")
		if end < 0 {
			return Token{}, false, &SyntaxError{Line: line, Msg: "unterminated /* comment: close it with */"}
		}
		i += 2 + end + 2
		kind, comment = WS, true
	case c == '-' && i+1 < len(src) && src[i+1] == '-':
		end := strings.IndexByte(src[i:], '\n')
		if end < 0 {
			i = len(src)
		} else {
			i += end // the newline is a token of its own
		}
		kind, comment = WS, true
	case c == '[':
		end := strings.IndexByte(src[i+1:], ']')
		if end < 0 {
			return Token{}, false, &SyntaxError{Line: line, Msg: "unterminated [identifier]: close it with ]"}
		}
		i += 1 + end + 1
	case c == '`' || c == '"' || c == '\'':
		end := strings.IndexByte(src[i+1:], c)
		if end < 0 {
			what := "quoted identifier"
			if c == '\'' {
				what = "string literal"
			}
			return Token{}, false, &SyntaxError{Line: line, Msg: fmt.Sprintf("unterminated %s: the %c opened here is never closed (write %c%c for a %c inside it)", what, c, c, c, c)}
		}
		i += 1 + end + 1
	case c == 0:
		return Token{}, false, &SyntaxError{Line: line, Msg: "NUL byte in SQL text: remove it"}
	case IDChar(c):
		for i++; i < len(src) && IDChar(src[i]); i++ {
		}
		kind = keywordKind(src[start:i])
	default:
		i++ // operators and other symbols
	}
	l.line += strings.Count(src[start:i], "\n")
	l.pos = i
	return Token{Kind: kind, Start: start, End: i, Line: line, Comment: comment}, true, nil
}

// keywordKind classifies an identifier-like word.
func keywordKind(w string) int {
	switch len(w) {
	case 3:
		if strings.EqualFold(w, "end") {
			return End
		}
	case 4:
		if strings.EqualFold(w, "temp") {
			return Temp
		}
	case 6:
		if strings.EqualFold(w, "create") {
			return Create
		}
	case 7:
		if strings.EqualFold(w, "trigger") {
			return Trigger
		}
		if strings.EqualFold(w, "explain") {
			return Explain
		}
	case 9:
		if strings.EqualFold(w, "temporary") {
			return Temp
		}
	}
	return Other
}

// utf8BOM is the byte order mark some editors put at the start of a file.
var utf8BOM = []byte{0xEF, 0xBB, 0xBF}

// Normalize returns data without a leading UTF-8 byte order mark and
// with every CRLF line ending turned into LF, so a file checked out on
// Windows or saved by another editor keeps its checksum and its statements.
// It never modifies data.
func Normalize(data []byte) []byte {
	data = bytes.TrimPrefix(data, utf8BOM)
	if bytes.Contains(data, []byte("\r\n")) {
		data = bytes.ReplaceAll(data, []byte("\r\n"), []byte("\n"))
	}
	return data
}
