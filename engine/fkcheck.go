package engine

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
)

// fkViolation is one row of PRAGMA foreign_key_check.
type fkViolation struct {
	Table  string
	RowID  sql.NullInt64
	Parent string
	FKID   int64
}

func (v fkViolation) String() string {
	row := "without rowid"
	if v.RowID.Valid {
		row = fmt.Sprintf("rowid %d", v.RowID.Int64)
	}
	return fmt.Sprintf("%s %s -> %s", v.Table, row, v.Parent)
}

// foreignKeyCheck lists every foreign-key violation in the DB.
func foreignKeyCheck(ctx context.Context, q querier) ([]fkViolation, error) {
	rows, err := q.QueryContext(ctx, "PRAGMA foreign_key_check")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []fkViolation
	for rows.Next() {
		var v fkViolation
		if err := rows.Scan(&v.Table, &v.RowID, &v.Parent, &v.FKID); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// newViolations returns the violations in after that were not in before.
func newViolations(after, before []fkViolation) []fkViolation {
	if len(before) == 0 {
		return after
	}
	seen := make(map[fkViolation]int, len(before))
	for _, v := range before {
		seen[v]++
	}
	var out []fkViolation
	for _, v := range after {
		if seen[v] > 0 {
			seen[v]--
			continue
		}
		out = append(out, v)
	}
	return out
}

// formatViolations lists up to ten violations for an error message.
func formatViolations(vs []fkViolation) string {
	parts := make([]string, 0, 11)
	for i, v := range vs {
		if i == 10 {
			parts = append(parts, fmt.Sprintf("and %d more", len(vs)-10))
			break
		}
		parts = append(parts, v.String())
	}
	return strings.Join(parts, "; ")
}
