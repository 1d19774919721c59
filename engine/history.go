package engine

import (
	"context"
	"fmt"
	"hash"
	"hash/fnv"
	"time"
)

// historyTable is shoal's own table in each DB: one row per applied
// migration. metaTable carries the format version of shoal's tables so that
// later releases can evolve them.
const (
	historyTable  = "shoal_migrations"
	metaTable     = "shoal_meta"
	historyFormat = "1"
)

// shoalAppID ("SHOL") in the header's application_id marks a DB whose
// user_version shoal owns. Shoal keeps there a 31-bit fingerprint of the
// applied history (versions and checksums), so that a fresh handle can tell
// a DB at head from two header pragmas, without SQLite parsing the schema:
// the fingerprint equals the migration set's only when exactly those
// migrations, unedited, are applied. Shoal takes user_version only when both
// were 0 when it first managed the DB, so apps that use user_version keep it.
const shoalAppID = 0x53484f4c

var createHistorySQL = []string{
	`CREATE TABLE IF NOT EXISTS ` + historyTable + ` (
	version     INTEGER PRIMARY KEY,
	name        TEXT    NOT NULL,
	checksum    TEXT    NOT NULL,
	applied_at  TEXT    NOT NULL,
	duration_ms INTEGER NOT NULL
)`,
	`CREATE TABLE IF NOT EXISTS ` + metaTable + ` (
	key   TEXT PRIMARY KEY,
	value TEXT NOT NULL
)`,
	`INSERT OR IGNORE INTO ` + metaTable + ` (key, value) VALUES ('format', '` + historyFormat + `')`,
}

// HistoryRow is one applied migration as recorded in the DB.
type HistoryRow struct {
	Version    int64  `json:"version"`
	Name       string `json:"name"`
	Checksum   string `json:"checksum"`
	AppliedAt  string `json:"applied_at"`
	DurationMs int64  `json:"duration_ms"`
}

// readHistory reads the history rows in version order.
func readHistory(ctx context.Context, q querier) ([]HistoryRow, error) {
	rows, err := q.QueryContext(ctx, `SELECT version, name, checksum, applied_at, duration_ms FROM `+historyTable+` ORDER BY version`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []HistoryRow
	for rows.Next() {
		var h HistoryRow
		if err := rows.Scan(&h.Version, &h.Name, &h.Checksum, &h.AppliedAt, &h.DurationMs); err != nil {
			return nil, err
		}
		out = append(out, h)
	}
	return out, rows.Err()
}

// ensureHistory creates shoal's tables (inside the caller's transaction) and
// takes user_version when nobody else uses it.
func ensureHistory(ctx context.Context, q querier, st *dbState) error {
	if st.managed {
		return nil
	}
	for _, s := range createHistorySQL {
		if _, err := q.ExecContext(ctx, s); err != nil {
			return err
		}
	}
	if st.appID == 0 && st.userVersion == 0 {
		if _, err := q.ExecContext(ctx, "PRAGMA application_id = "+itoa(shoalAppID)); err != nil {
			return err
		}
		st.appID = shoalAppID
	}
	st.managed = true
	return nil
}

// recordHistory inserts (up) or deletes (down) the history row of m and
// mirrors the new version into user_version when shoal owns it.
func recordHistory(ctx context.Context, q querier, st *dbState, m *Migration, down bool, took time.Duration) error {
	if down {
		if _, err := q.ExecContext(ctx, `DELETE FROM `+historyTable+` WHERE version = ?`, m.Version); err != nil {
			return err
		}
	} else {
		if _, err := q.ExecContext(ctx, `INSERT INTO `+historyTable+` (version, name, checksum, applied_at, duration_ms) VALUES (?, ?, ?, ?, ?)`,
			m.Version, m.Name, m.Checksum, time.Now().UTC().Format(time.RFC3339Nano), took.Milliseconds()); err != nil {
			return err
		}
	}
	return nil
}

// syncUserVersion stores the history's fingerprint in user_version when
// shoal owns it.
func syncUserVersion(ctx context.Context, q querier, st *dbState) error {
	if st.appID != shoalAppID {
		return nil
	}
	rows, err := readHistory(ctx, q)
	if err != nil {
		return err
	}
	h := newSetHash()
	for _, r := range rows {
		h.add(r.Version, r.Checksum)
	}
	_, err = q.ExecContext(ctx, "PRAGMA user_version = "+itoa(h.sum()))
	return err
}

// setHash fingerprints a list of (version, checksum) in version order.
type setHash struct{ h hash.Hash32 }

func newSetHash() setHash { return setHash{fnv.New32a()} }

func (s setHash) add(version int64, checksum string) {
	fmt.Fprintf(s.h, "%d:%s\n", version, checksum)
}

// sum is in 1..2^31-1: never 0 (an unused user_version) nor negative.
func (s setHash) sum() int64 {
	v := int64(s.h.Sum32() & 0x7fffffff)
	if v == 0 {
		v = 1
	}
	return v
}
