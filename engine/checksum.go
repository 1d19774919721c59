package engine

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"strconv"
)

// utf8BOM is the byte order mark some editors put at the start of a file.
var utf8BOM = []byte{0xEF, 0xBB, 0xBF}

// normalizeText returns data without a leading UTF-8 byte order mark and
// with every CRLF line ending turned into LF, so a file checked out on
// Windows or saved by another editor keeps its checksum and its statements.
// It never modifies data.
func normalizeText(data []byte) []byte {
	data = bytes.TrimPrefix(data, utf8BOM)
	if bytes.Contains(data, []byte("\r\n")) {
		data = bytes.ReplaceAll(data, []byte("\r\n"), []byte("\n"))
	}
	return data
}

// Checksum is the checksum shoal records for a migration file: the hex
// SHA-256 of its normalised text (UTF-8 BOM stripped, CRLF -> LF).
func Checksum(data []byte) string {
	sum := sha256.Sum256(normalizeText(data))
	return hex.EncodeToString(sum[:])
}

// goChecksum is the checksum of a Go migration, which has no file text:
// the Checksum of "go:<version>:<name>".
func goChecksum(version int64, name string) string {
	return Checksum([]byte("go:" + strconv.FormatInt(version, 10) + ":" + name))
}
