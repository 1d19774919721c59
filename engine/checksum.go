package engine

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"

	"github.com/shoal-dev/shoal/internal/sqltext"
)

// utf8BOM is the byte order mark some editors put at the start of a file.
var utf8BOM = []byte{0xEF, 0xBB, 0xBF}

// normalizeText strips a UTF-8 BOM and turns CRLF into LF (sqltext.Normalize).
func normalizeText(data []byte) []byte { return sqltext.Normalize(data) }

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
