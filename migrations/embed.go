// Package migrations holds shoal's example tenant schema (a small notes app:
// users, notes, tags), embedded in the binary as the default migrations.
package migrations

import "embed"

// FS is the example migrations directory.
//
//go:embed *.sql
var FS embed.FS
