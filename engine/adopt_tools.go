package engine

import (
	"bytes"
	"crypto/sha256"
	"crypto/sha512"
	"database/sql"
	"encoding/hex"
	"fmt"
	"hash/crc32"
	"io/fs"
	"strconv"
	"strings"
)

// This file reads the histories of the tools that keep checksums of their
// migrations (sqlx, Flyway, Prisma): every applied row's checksum is
// compared with the file's before shoal takes over.

// upBytes reads the up file of the migration with version v.
func (a *adopter) upBytes(v int64) (*Migration, []byte, error) {
	m := a.e.byVersion[v]
	if m == nil || m.Kind == KindGo || a.e.opts.Dir == nil {
		return m, nil, nil
	}
	b, err := fs.ReadFile(a.e.opts.Dir, m.File)
	if err != nil {
		return m, nil, &DirError{Dir: a.e.opts.DirName, File: m.File, Reason: fmt.Sprintf("cannot be read (%v)", err)}
	}
	return m, b, nil
}

// lineEndingVariants are the file's bytes as written and with LF or CRLF
// line endings: a checkout on another OS changes only those, and the
// checksum the tool recorded may be of either.
func lineEndingVariants(b []byte) [][]byte {
	lf := bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n"))
	crlf := bytes.ReplaceAll(lf, []byte("\n"), []byte("\r\n"))
	return [][]byte{b, lf, crlf}
}

// changedRefusal refuses a history whose recorded checksum differs from
// the file's.
func (a *adopter) changedRefusal(tool, table string, m *Migration) error {
	return adoptRefusal(a.path, tool, m.Version, "%s records another checksum for %s than the file has now: the file was edited after %s applied it; restore the applied text (add a new migration for the change), then enroll", table, m.File, tool)
}

// sqlx: _sqlx_migrations (version, success, checksum = SHA-384 of the
// migration's SQL). A row with success false is a failed migration.
func (a *adopter) sqlx() (*foreignHistory, error) {
	if !a.has("_sqlx_migrations", "version", "success", "checksum") {
		return nil, nil
	}
	type row struct {
		v   int64
		ok  bool
		sum []byte
	}
	var rows []row
	if err := a.query(bg, `SELECT version, success, checksum FROM _sqlx_migrations ORDER BY version`, func(r *sql.Rows) error {
		var x row
		err := r.Scan(&x.v, &x.ok, &x.sum)
		rows = append(rows, x)
		return err
	}); err != nil {
		return nil, err
	}
	var keys []string
	for _, r := range rows {
		if !r.ok {
			return nil, adoptRefusal(a.path, FromSqlx, r.v, "_sqlx_migrations marks version %d failed (success = false, sqlx calls it dirty): repair the DB by hand, delete that row, then enroll", r.v)
		}
		keys = append(keys, strconv.FormatInt(r.v, 10))
	}
	h, err := a.mapKeys(FromSqlx, "_sqlx_migrations", keys, false)
	if err != nil {
		return nil, err
	}
	for _, r := range rows {
		m, b, err := a.upBytes(r.v)
		if err != nil || b == nil {
			return nil, err
		}
		match := false
		for _, x := range lineEndingVariants(b) {
			s := sha512.Sum384(x)
			match = match || bytes.Equal(s[:], r.sum)
		}
		if !match {
			return nil, a.changedRefusal(FromSqlx, "_sqlx_migrations", m)
		}
	}
	return h, nil
}

// FlywayChecksum is Flyway's checksum of a migration file: CRC-32 over its
// lines without their line endings (a leading BOM dropped), as a signed
// 32-bit number.
func FlywayChecksum(b []byte) int32 {
	b = bytes.TrimPrefix(b, utf8BOM)
	h := crc32.NewIEEE()
	start := 0
	for i := 0; i <= len(b); i++ {
		if i == len(b) || b[i] == '\n' || b[i] == '\r' {
			h.Write(b[start:i])
			start = i + 1
		}
	}
	return int32(h.Sum32())
}

// flyway: flyway_schema_history, a log by installed_rank: SQL rows apply
// their version, UNDO_SQL and DELETE rows take it back, a BASELINE row marks
// every version up to it applied; a failed row (success false) is refused;
// checksums are compared with the files.
func (a *adopter) flyway() (*foreignHistory, error) {
	if !a.has("flyway_schema_history", "installed_rank", "version", "type", "script", "checksum", "success") {
		return nil, nil
	}
	type row struct {
		version, typ, script sql.NullString
		sum                  sql.NullInt64
		ok                   bool
	}
	var rows []row
	if err := a.query(bg, `SELECT version, type, script, checksum, success FROM flyway_schema_history ORDER BY installed_rank`, func(r *sql.Rows) error {
		var x row
		err := r.Scan(&x.version, &x.typ, &x.script, &x.sum, &x.ok)
		rows = append(rows, x)
		return err
	}); err != nil {
		return nil, err
	}
	applied := map[string]row{}
	var baseline string
	for _, r := range rows {
		if !r.ok {
			return nil, adoptRefusal(a.path, FromFlyway, 0, "flyway_schema_history has a failed row for version %s (%s): repair the DB by hand and run `flyway repair`, then enroll", r.version.String, r.script.String)
		}
		if !r.version.Valid {
			continue // a repeatable migration: shoal does not run them (docs/switching.md)
		}
		key := flywayKey(r.version.String)
		switch strings.ToUpper(r.typ.String) {
		case "SCHEMA":
		case "BASELINE":
			baseline = key
		case "UNDO_SQL", "UNDO_JDBC", "DELETE":
			delete(applied, key)
		default:
			applied[key] = r
		}
	}
	var keys []string
	for k := range applied {
		keys = append(keys, k)
	}
	if baseline != "" {
		// Every migration at or below the baseline counts as applied.
		bv, ok := a.versionOf(baseline, true)
		if !ok {
			return nil, adoptRefusal(a.path, FromFlyway, 0, "flyway_schema_history has its baseline at version %s, which no migration here has: add the V file of the baseline version, or enroll with --version", baseline)
		}
		for _, m := range a.e.migrations {
			if m.Version <= bv {
				keys = append(keys, strconv.FormatInt(m.Version, 10))
			}
		}
	}
	h, err := a.mapKeys(FromFlyway, "flyway_schema_history", keys, true)
	if err != nil {
		return nil, err
	}
	for k, r := range applied {
		v, _ := a.versionOf(k, true)
		m, b, err := a.upBytes(v)
		if err != nil {
			return nil, err
		}
		if b != nil && r.sum.Valid && int32(r.sum.Int64) != FlywayChecksum(b) {
			return nil, a.changedRefusal(FromFlyway, "flyway_schema_history", m)
		}
	}
	return h, nil
}

// prisma: _prisma_migrations (migration_name, checksum = SHA-256 hex of
// migration.sql, finished_at, rolled_back_at). A row neither finished nor
// rolled back is a migration that failed or is running; a rolled-back
// migration that was not applied again is refused too: resolve both with
// Prisma first.
func (a *adopter) prisma() (*foreignHistory, error) {
	if !a.has("_prisma_migrations", "migration_name", "checksum", "finished_at", "rolled_back_at") {
		return nil, nil
	}
	type row struct {
		name, sum        string
		finished, rolled sql.NullString
	}
	var rows []row
	if err := a.query(bg, `SELECT migration_name, checksum, CAST(finished_at AS TEXT), CAST(rolled_back_at AS TEXT) FROM _prisma_migrations ORDER BY started_at`, func(r *sql.Rows) error {
		var x row
		err := r.Scan(&x.name, &x.sum, &x.finished, &x.rolled)
		rows = append(rows, x)
		return err
	}); err != nil {
		return nil, err
	}
	done := map[string]row{}
	rolledBack := map[string]bool{}
	for _, r := range rows {
		switch {
		case r.rolled.Valid:
			rolledBack[r.name] = true
		case !r.finished.Valid:
			return nil, adoptRefusal(a.path, FromPrisma, 0, "_prisma_migrations has %s started but not finished: it failed (or is running); resolve it with `prisma migrate resolve`, then enroll", r.name)
		default:
			done[r.name] = r
		}
	}
	for name := range rolledBack {
		if _, again := done[name]; !again {
			return nil, adoptRefusal(a.path, FromPrisma, 0, "_prisma_migrations marks %s rolled back and it was not applied again: apply it with Prisma (or remove the row after checking the schema), then enroll", name)
		}
	}
	var keys []string
	for name := range done {
		keys = append(keys, name)
	}
	h, err := a.mapKeys(FromPrisma, "_prisma_migrations", keys, false)
	if err != nil {
		return nil, err
	}
	for name, r := range done {
		v, _ := a.versionOf(name, false)
		m, b, err := a.upBytes(v)
		if err != nil {
			return nil, err
		}
		if b != nil && !prismaChecksumMatches(b, r.sum) {
			return nil, a.changedRefusal(FromPrisma, "_prisma_migrations", m)
		}
	}
	return h, nil
}

// prismaChecksumMatches compares migration.sql with a recorded SHA-256 in
// hex — two digits a byte, or each byte's leading zero left out (both forms
// are accepted) — of the file as written or with LF or CRLF line endings.
func prismaChecksumMatches(b []byte, recorded string) bool {
	recorded = strings.ToLower(strings.TrimSpace(recorded))
	for _, x := range lineEndingVariants(b) {
		s := sha256.Sum256(x)
		if hex.EncodeToString(s[:]) == recorded {
			return true
		}
		var short strings.Builder
		for _, c := range s {
			fmt.Fprintf(&short, "%x", c)
		}
		if short.String() == recorded {
			return true
		}
	}
	return false
}
