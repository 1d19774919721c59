package engine

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// Taking over another migration tool's history (docs/switching.md): shoal
// reads that tool's table in the DB, checks it (dirty or failed rows,
// checksums where the tool keeps them, versions that no file has, gaps),
// checks the schema against what migrations 1..N produce, and records the
// same position in its own history. The other tool's table is left as it
// was.

// Tools whose history `enroll --from` reads.
const (
	FromGolangMigrate = "golang-migrate"
	FromDbmate        = "dbmate"
	FromRails         = "rails"
	FromGoose         = "goose"
	FromDiesel        = "diesel"
	FromSqlx          = "sqlx"
	FromFlyway        = "flyway"
	FromPrisma        = "prisma"
	FromFastmigrate   = "fastmigrate"
	FromAlembic       = "alembic"
)

// AdoptTools lists the names `--from` accepts, in detection order.
func AdoptTools() []string {
	return []string{FromFastmigrate, FromGolangMigrate, FromDbmate, FromRails, FromGoose, FromDiesel, FromSqlx,
		FromFlyway, FromPrisma, FromAlembic}
}

// foreignTables are the bookkeeping tables of other migration tools: shoal
// leaves them as they are and leaves them out of schema comparisons.
var foreignTables = map[string]bool{
	"schema_migrations":          true, // golang-migrate, dbmate, Rails
	"ar_internal_metadata":       true, // Rails
	"goose_db_version":           true,
	"__diesel_schema_migrations": true,
	"_sqlx_migrations":           true,
	"flyway_schema_history":      true,
	"refinery_schema_history":    true,
	"_prisma_migrations":         true,
	"atlas_schema_revisions":     true,
	"_meta":                      true, // fastmigrate
	"alembic_version":            true,
}

// EnrollOptions tune Enroll.
type EnrollOptions struct {
	// Version is the version the DB is at (0: from another tool's history,
	// else the version whose schema matches).
	Version int64
	// From names the tool whose history to take over (AdoptTools); ""
	// detects it from the tables present.
	From string
	// AlembicMap maps Alembic revision ids to shoal versions (Alembic's
	// alembic_version holds a revision id, not a number).
	AlembicMap map[string]int64
	// requireHistory: adopt only from another tool's history, never by
	// schema match alone (MigrateAdopting).
	requireHistory bool
}

// foreignHistory is another tool's record of a DB's position, checked.
type foreignHistory struct {
	tool    string
	table   string
	applied []int64 // shoal versions, ascending
}

func (h *foreignHistory) source() string { return h.tool + " (" + h.table + ")" }

func (h *foreignHistory) version() int64 {
	if len(h.applied) == 0 {
		return 0
	}
	return h.applied[len(h.applied)-1]
}

// adoptRefusal is an *Error (ErrEnroll) about another tool's history.
func adoptRefusal(path, tool string, v int64, format string, args ...any) error {
	return &Error{Kind: ErrEnroll, Path: path, Version: v, From: tool, Detail: fmt.Sprintf(format, args...)}
}

// readForeignHistory reads the history of o.From, or of the one tool whose
// table the DB has. It returns nil, nil when there is none (and From is
// empty). Two tools' histories that disagree are refused: name one with
// From.
func (e *Engine) readForeignHistory(ctx context.Context, path string, conn *sql.Conn, o EnrollOptions) (*foreignHistory, error) {
	tables, err := tableColumnsAll(ctx, conn)
	if err != nil {
		return nil, sqliteError(path, err)
	}
	a := &adopter{e: e, path: path, conn: conn, tables: tables, alembic: o.AlembicMap}
	if o.From != "" {
		from := strings.ToLower(o.From)
		read, ok := a.readers()[from]
		if !ok {
			return nil, &Error{Kind: ErrEnroll, Path: path, From: o.From, Detail: fmt.Sprintf("unknown tool %q for --from: use one of %s", o.From, strings.Join(AdoptTools(), ", "))}
		}
		h, err := read()
		if err != nil {
			return nil, err
		}
		if h == nil {
			return nil, adoptRefusal(path, from, 0, "it has no %s history table (%s): enroll without --from to match its schema, or name the tool that migrated it", from, strings.Join(historyTablesOf(from), " or "))
		}
		return h, a.check(h)
	}
	var found []*foreignHistory
	seen := map[string]bool{}
	for _, tool := range AdoptTools() {
		if tool == FromRails || tool == FromAlembic {
			continue // dbmate's reader covers Rails; Alembic needs its map
		}
		h, err := a.readers()[tool]()
		if err != nil {
			return nil, err
		}
		if h != nil && !seen[h.table] {
			seen[h.table] = true
			found = append(found, h)
		}
	}
	if _, ok := tables["alembic_version"]; ok {
		if o.AlembicMap == nil {
			return nil, adoptRefusal(path, FromAlembic, 0, "it has Alembic's alembic_version, which holds a revision id, not a version: pass a map file of revision ids to versions (`--from alembic --map FILE`)")
		}
		h, err := a.alembicHistory()
		if err != nil {
			return nil, err
		}
		found = append(found, h)
	}
	switch len(found) {
	case 0:
		return nil, nil
	case 1:
	default:
		for _, h := range found[1:] {
			if h.version() != found[0].version() {
				return nil, adoptRefusal(path, "", 0, "%s says version %d but %s says %d: pass --from with the tool that migrated it last",
					found[0].source(), found[0].version(), h.source(), h.version())
			}
		}
	}
	return found[0], a.check(found[0])
}

// historyTablesOf names the tables a tool keeps its history in.
func historyTablesOf(tool string) []string {
	switch tool {
	case FromGolangMigrate, FromDbmate, FromRails:
		return []string{"schema_migrations"}
	case FromGoose:
		return []string{"goose_db_version"}
	case FromDiesel:
		return []string{"__diesel_schema_migrations"}
	case FromSqlx:
		return []string{"_sqlx_migrations"}
	case FromFlyway:
		return []string{"flyway_schema_history"}
	case FromPrisma:
		return []string{"_prisma_migrations"}
	case FromFastmigrate:
		return []string{"_meta"}
	case FromAlembic:
		return []string{"alembic_version"}
	}
	return nil
}

// tableColumnsAll lists the DB's tables with their lower-case column names.
func tableColumnsAll(ctx context.Context, conn *sql.Conn) (map[string]map[string]bool, error) {
	rows, err := conn.QueryContext(ctx, `SELECT m.name, lower(p.name) FROM sqlite_schema m, pragma_table_info(m.name) p WHERE m.type = 'table'`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]map[string]bool{}
	for rows.Next() {
		var t, c string
		if err := rows.Scan(&t, &c); err != nil {
			return nil, err
		}
		if out[t] == nil {
			out[t] = map[string]bool{}
		}
		out[t][c] = true
	}
	return out, rows.Err()
}

// adopter reads other tools' histories of one DB.
type adopter struct {
	e       *Engine
	path    string
	conn    *sql.Conn
	tables  map[string]map[string]bool
	alembic map[string]int64
}

func (a *adopter) readers() map[string]func() (*foreignHistory, error) {
	return map[string]func() (*foreignHistory, error){
		FromFastmigrate:   a.fastmigrate,
		FromGolangMigrate: a.golangMigrate,
		FromDbmate:        func() (*foreignHistory, error) { return a.schemaMigrations(FromDbmate) },
		FromRails:         func() (*foreignHistory, error) { return a.schemaMigrations(FromRails) },
		FromGoose:         a.goose,
		FromDiesel:        a.diesel,
		FromSqlx:          a.sqlx,
		FromFlyway:        a.flyway,
		FromPrisma:        a.prisma,
		FromAlembic:       a.alembicHistory,
	}
}

// has reports a table with all the given columns.
func (a *adopter) has(table string, cols ...string) bool {
	c, ok := a.tables[table]
	if !ok {
		return false
	}
	for _, n := range cols {
		if !c[n] {
			return false
		}
	}
	return true
}

// query runs q and calls scan for every row.
func (a *adopter) query(ctx context.Context, q string, scan func(*sql.Rows) error) error {
	rows, err := a.conn.QueryContext(ctx, q)
	if err != nil {
		return sqliteError(a.path, err)
	}
	defer rows.Close()
	for rows.Next() {
		if err := scan(rows); err != nil {
			return sqliteError(a.path, err)
		}
	}
	return sqliteError(a.path, rows.Err())
}

// texts runs a query of one text column and returns its values.
func (a *adopter) texts(q string) ([]string, error) {
	var out []string
	err := a.query(bg, q, func(r *sql.Rows) error {
		var k string
		err := r.Scan(&k)
		out = append(out, k)
		return err
	})
	return out, err
}

var bg = context.Background()

// versionOf maps a version as a tool records it to shoal's: the migration
// whose ToolVersion it is (Flyway's dotted versions compared by number),
// else the migration with that number.
func (a *adopter) versionOf(key string, flyway bool) (int64, bool) {
	key = strings.TrimSpace(key)
	for i := range a.e.migrations {
		m := &a.e.migrations[i]
		if m.ToolVersion == "" {
			continue
		}
		if m.ToolVersion == key || flyway && flywayKey(m.ToolVersion) == flywayKey(key) {
			return m.Version, true
		}
	}
	v, err := strconv.ParseInt(key, 10, 64)
	if err != nil {
		return 0, false
	}
	if _, ok := a.e.byVersion[v]; ok {
		return v, true
	}
	return v, false
}

// mapKeys turns a tool's applied versions into shoal's, refusing versions
// that no migration has.
func (a *adopter) mapKeys(tool, table string, keys []string, flyway bool) (*foreignHistory, error) {
	h := &foreignHistory{tool: tool, table: table}
	seen := map[int64]bool{}
	for _, k := range keys {
		v, ok := a.versionOf(k, flyway)
		if !ok {
			return nil, adoptRefusal(a.path, tool, v, "%s records version %s, which no migration in %s has (ahead): deploy the migrations this DB was migrated with", table, k, a.e.opts.DirName)
		}
		if !seen[v] {
			seen[v] = true
			h.applied = append(h.applied, v)
		}
	}
	sort.Slice(h.applied, func(i, j int) bool { return h.applied[i] < h.applied[j] })
	return h, nil
}

// check refuses a history with gaps: shoal records 1..N; a migration below
// the newest applied one that the tool did not apply (out of order) must be
// applied (or removed) with that tool first.
func (a *adopter) check(h *foreignHistory) error {
	applied := map[int64]bool{}
	for _, v := range h.applied {
		applied[v] = true
	}
	var missing []string
	for _, m := range a.e.migrations {
		if m.Version > h.version() {
			break
		}
		if !applied[m.Version] {
			missing = append(missing, m.File)
		}
	}
	if len(missing) > 0 {
		if len(missing) > 5 {
			missing = append(missing[:5], fmt.Sprintf("and %d more", len(missing)-5))
		}
		return adoptRefusal(a.path, h.tool, h.version(), "%s records version %d applied but not %s (applied out of order, or skipped): apply them with %s first, or enroll with --version after checking the schema",
			h.table, h.version(), strings.Join(missing, ", "), h.tool)
	}
	return nil
}

// fastmigrate: _meta (id = 1, version).
func (a *adopter) fastmigrate() (*foreignHistory, error) {
	if !a.has("_meta", "version") {
		return nil, nil
	}
	var v sql.NullInt64
	if err := a.conn.QueryRowContext(bg, `SELECT max(version) FROM _meta`).Scan(&v); err != nil {
		return nil, sqliteError(a.path, err)
	}
	return a.upTo(FromFastmigrate, "_meta", v.Int64)
}

// upTo is the history of a tool that records only its newest version: every
// migration up to it is applied.
func (a *adopter) upTo(tool, table string, v int64) (*foreignHistory, error) {
	h := &foreignHistory{tool: tool, table: table}
	if v <= 0 {
		return h, nil
	}
	if _, ok := a.e.byVersion[v]; !ok {
		return nil, adoptRefusal(a.path, tool, v, "%s records version %d, which no migration in %s has (ahead): deploy the migrations this DB was migrated with", table, v, a.e.opts.DirName)
	}
	for _, m := range a.e.migrations {
		if m.Version <= v {
			h.applied = append(h.applied, m.Version)
		}
	}
	return h, nil
}

// golangMigrate: schema_migrations (version, dirty), one row.
func (a *adopter) golangMigrate() (*foreignHistory, error) {
	if !a.has("schema_migrations", "version", "dirty") {
		return nil, nil
	}
	var v sql.NullInt64
	var dirty sql.NullBool
	err := a.conn.QueryRowContext(bg, `SELECT version, dirty FROM schema_migrations LIMIT 1`).Scan(&v, &dirty)
	if errors.Is(err, sql.ErrNoRows) {
		return &foreignHistory{tool: FromGolangMigrate, table: "schema_migrations"}, nil
	}
	if err != nil {
		return nil, sqliteError(a.path, err)
	}
	if dirty.Bool {
		return nil, adoptRefusal(a.path, FromGolangMigrate, v.Int64,
			"golang-migrate marks version %d dirty: that migration failed half-way and golang-migrate committed what ran before the failure; repair the DB by hand, then `migrate force %d` (or the version before it), then enroll", v.Int64, v.Int64)
	}
	return a.upTo(FromGolangMigrate, "schema_migrations", v.Int64)
}

// schemaMigrations: dbmate's and Rails' schema_migrations (version text),
// one row per applied migration.
func (a *adopter) schemaMigrations(tool string) (*foreignHistory, error) {
	if !a.has("schema_migrations", "version") || a.has("schema_migrations", "dirty") {
		return nil, nil
	}
	keys, err := a.texts(`SELECT CAST(version AS TEXT) FROM schema_migrations`)
	if err != nil {
		return nil, err
	}
	name := "dbmate/Rails"
	if tool == FromRails {
		name = FromRails
	} else if _, ok := a.tables["ar_internal_metadata"]; ok {
		name = FromRails
	}
	return a.mapKeys(name, "schema_migrations", keys, false)
}

// goose: goose_db_version (id, version_id, is_applied), a log: an applied
// row adds its version, a not-applied row (older goose's down) removes it;
// version 0 is goose's own first row.
func (a *adopter) goose() (*foreignHistory, error) {
	if !a.has("goose_db_version", "version_id", "is_applied") {
		return nil, nil
	}
	set := map[int64]bool{}
	if err := a.query(bg, `SELECT version_id, is_applied FROM goose_db_version ORDER BY id`, func(r *sql.Rows) error {
		var v int64
		var applied bool
		if err := r.Scan(&v, &applied); err != nil {
			return err
		}
		if v > 0 {
			set[v] = applied
		}
		return nil
	}); err != nil {
		return nil, err
	}
	var keys []string
	for v, ok := range set {
		if ok {
			keys = append(keys, strconv.FormatInt(v, 10))
		}
	}
	return a.mapKeys(FromGoose, "goose_db_version", keys, false)
}

// diesel: __diesel_schema_migrations (version text without dashes).
func (a *adopter) diesel() (*foreignHistory, error) {
	if !a.has("__diesel_schema_migrations", "version") {
		return nil, nil
	}
	keys, err := a.texts(`SELECT CAST(version AS TEXT) FROM __diesel_schema_migrations`)
	if err != nil {
		return nil, err
	}
	return a.mapKeys(FromDiesel, "__diesel_schema_migrations", keys, false)
}

// alembicHistory: alembic_version (version_num) through the map file.
func (a *adopter) alembicHistory() (*foreignHistory, error) {
	if !a.has("alembic_version", "version_num") {
		return nil, nil
	}
	revs, err := a.texts(`SELECT version_num FROM alembic_version`)
	if err != nil {
		return nil, err
	}
	switch {
	case len(revs) == 0:
		return &foreignHistory{tool: FromAlembic, table: "alembic_version"}, nil
	case len(revs) > 1:
		return nil, adoptRefusal(a.path, FromAlembic, 0, "alembic_version holds %d heads (%s): merge the branches with Alembic first (`alembic merge`), then enroll", len(revs), strings.Join(revs, ", "))
	case a.alembic == nil:
		return nil, adoptRefusal(a.path, FromAlembic, 0, "alembic_version holds revision %s, not a version: pass a map file of revision ids to versions with --map", revs[0])
	}
	v, ok := a.alembic[revs[0]]
	if !ok {
		return nil, adoptRefusal(a.path, FromAlembic, 0, "alembic_version holds revision %s, which the map file does not name: add a line \"%s VERSION\"", revs[0], revs[0])
	}
	return a.upTo(FromAlembic, "alembic_version", v)
}

// ParseAlembicMap reads a map file of Alembic revision ids to shoal
// versions: one "REVISION VERSION" pair a line; blank lines and # comments
// are skipped.
func ParseAlembicMap(data []byte) (map[string]int64, error) {
	out := map[string]int64{}
	for i, line := range strings.Split(string(data), "\n") {
		t := strings.TrimSpace(line)
		if t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		f := strings.Fields(strings.ReplaceAll(t, "=", " "))
		if len(f) != 2 {
			return nil, fmt.Errorf("line %d: want \"REVISION VERSION\", got %q", i+1, t)
		}
		v, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil || v <= 0 {
			return nil, fmt.Errorf("line %d: version %q is not a positive number", i+1, f[1])
		}
		if _, dup := out[f[0]]; dup {
			return nil, fmt.Errorf("line %d: revision %s is mapped twice", i+1, f[0])
		}
		out[f[0]] = v
	}
	return out, nil
}

// WithoutForeign drops from got the other tools' bookkeeping tables (and
// the objects on them) that want does not have: they stay in the DB after
// shoal takes over, so that a team can go back (Enroll and schema.Drift
// compare schemas without them).
func WithoutForeign(got []SchemaObject, want []SchemaObject) []SchemaObject {
	drop := map[string]bool{}
	for _, o := range got {
		if foreignTables[o.Name] && o.Type == "table" {
			drop[o.Name] = true
		}
	}
	for _, o := range want {
		delete(drop, o.Name)
	}
	return withoutTables(got, drop)
}

// OutcomeAdopted is the outcome of a fleet job that took over another
// tool's history (and then migrated the DB).
const OutcomeAdopted = "adopted"

// MigrateAdopting is Migrate for a run that adopts on first contact
// (`run --adopt`, `produce --adopt`): a DB shoal does not manage yet whose
// tables another tool's history describes is taken over (EnrollWith with
// eo: the same checks as `shoal enroll --from`) and then migrated. enrolled
// is nil when the DB was already shoal's. A DB with tables and no other
// tool's history, or whose history cannot be taken over, stays unmanaged:
// the error wraps ErrUnmanaged (and ErrEnroll with the reason).
func (e *Engine) MigrateAdopting(ctx context.Context, path string, mo MigrateOptions, eo EnrollOptions) (*Result, *Enrolled, error) {
	res, err := e.Migrate(ctx, path, mo)
	if !errors.Is(err, ErrUnmanaged) {
		return res, nil, err
	}
	eo.Version = 0
	eo.requireHistory = true
	en, eerr := e.EnrollWith(ctx, path, eo)
	if eerr != nil {
		// Another worker may have taken it over meanwhile.
		if res, err := e.Migrate(ctx, path, mo); !errors.Is(err, ErrUnmanaged) {
			return res, nil, err
		}
		if errors.Is(eerr, ErrEnroll) {
			return nil, nil, &Error{Path: path, Kind: ErrUnmanaged, Detail: "cannot take over its history", Err: eerr,
				Hint: "fix what the message says, or adopt it with Engine.Enroll"}
		}
		return nil, nil, eerr
	}
	res, err = e.Migrate(ctx, path, mo)
	if res != nil {
		res.Adopted = en
	}
	return res, en, err
}
