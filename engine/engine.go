// Package engine migrates the schema of one SQLite database file at a time:
// atomically, under a lock against other migrators, with foreign keys safe.
// It knows SQLite and migration files and nothing of queues.
package engine

import (
	"io/fs"
	"path/filepath"
	"sync"
	"time"

	"modernc.org/sqlite"
)

// Options configure an Engine.
type Options struct {
	// Dir is the migrations directory; DirName names it in messages.
	Dir     fs.FS
	DirName string
	// DirPath is the OS directory Dir reads, if any: script migrations run
	// in place from it (`python3 DIR/FILE DB`). Set automatically when Dir
	// comes from OpenDir; "" (an embedded fs.FS) runs each script from a
	// private temporary copy.
	DirPath string
	// Go lists migrations written in Go, merged with the files by version.
	Go []GoMigration
	// Functions are the application's SQL functions that migrations may
	// call (see Function); the engine opens DBs through a driver of its own
	// that has them.
	Functions []Function
	// Layout forces the layout of Dir (LayoutGoose, "dbmate", ...; see
	// Layouts); "" detects it (docs/switching.md).
	Layout string
	// BusyTimeout bounds every wait for a lock (SQLite's and the migrator
	// lock). Default 30s.
	BusyTimeout time.Duration
	// ScriptTimeout bounds one .sh/.py step. Default 10m; negative: none.
	ScriptTimeout time.Duration
}

// Engine holds a parsed, validated migrations directory and a cache of DBs
// verified at head. It is safe for concurrent use by many goroutines.
type Engine struct {
	opts       Options
	layout     string         // the layout Dir was read in
	fnDriver   *sqlite.Driver // nil without Options.Functions
	migrations []Migration
	byVersion  map[int64]*Migration
	head       int64
	// headHash is the user_version fingerprint of a DB with exactly these
	// migrations applied (see syncUserVersion).
	headHash int64

	mu    sync.Mutex
	cache map[string]fingerprint // path -> fingerprint when verified at head
	// cacheMax bounds cache (0: DefaultAtHeadCache, negative: no cache).
	cacheMax int

	schemas versionSchemas // canonical schema per version (SchemaAt)
}

// MigrateOptions tune one run.
type MigrateOptions struct {
	// To stops at this version (0: head).
	To int64
	// DryRun reports what would run and changes nothing.
	DryRun bool
	// AllowChanged accepts applied migrations whose file changed.
	AllowChanged bool
	// AllowOutOfOrder applies pending migrations older than the newest applied one.
	AllowOutOfOrder bool
	// PerMigration commits each migration in its own transaction instead of
	// one transaction per segment.
	PerMigration bool
	// Backup, when set, takes a consistent backup before anything is applied
	// (only when something is pending).
	Backup *BackupOptions
	// MustExist refuses (ErrNotFound) instead of creating a missing file.
	MustExist bool
}

// Applied is one migration applied by a run.
type Applied struct {
	Version    int64  `json:"version"`
	Name       string `json:"name"`
	File       string `json:"file"`
	DurationMs int64  `json:"duration_ms"`
}

// Result is what one run did.
type Result struct {
	Path    string    `json:"path"`
	From    int64     `json:"from"`
	To      int64     `json:"to"`
	Applied []Applied `json:"applied"`
	// Pending lists what a dry run would apply.
	Pending []Applied `json:"pending"`
	// Backup is the path of the backup taken, "" when none.
	Backup string `json:"backup"`
	DryRun bool   `json:"dry_run"`
	// Adopted says how MigrateAdopting took over another tool's history
	// before this run (nil otherwise).
	Adopted *Enrolled `json:"-"`
}

// Outcome is "migrated" when something was applied, else "current".
func (r *Result) Outcome() string {
	if r != nil && len(r.Applied) > 0 {
		return OutcomeMigrated
	}
	return OutcomeCurrent
}

// New parses and validates the migrations once; the Engine then serves any
// number of DBs.
func New(o Options) (*Engine, error) {
	if o.BusyTimeout <= 0 {
		o.BusyTimeout = 30 * time.Second
	}
	if o.ScriptTimeout == 0 {
		o.ScriptTimeout = 10 * time.Minute
	} else if o.ScriptTimeout < 0 {
		o.ScriptTimeout = 0
	}
	if o.DirName == "" {
		o.DirName = "(migrations)"
	}
	if d, ok := o.Dir.(diskDir); ok && o.DirPath == "" {
		o.DirPath = d.dir
	}
	var ms []Migration
	layout, err := readLayout(o)
	if err != nil {
		return nil, err
	}
	if layout.name != LayoutShoal {
		if ms, err = loadLayout(o.Dir, o.DirName, layout, o.Go); err != nil {
			return nil, err
		}
	} else if o.Dir != nil || len(o.Go) > 0 {
		if ms, err = loadMigrations(o.Dir, o.DirName, o.Go); err != nil {
			return nil, err
		}
	}
	fnd, err := newFunctionDriver(o.DirName, o.Functions)
	if err != nil {
		return nil, err
	}
	e := &Engine{opts: o, layout: layout.name, fnDriver: fnd, migrations: ms, byVersion: make(map[int64]*Migration, len(ms)), cache: map[string]fingerprint{}}
	for i := range e.migrations {
		m := &e.migrations[i]
		if m.Kind == KindScript && o.DirPath != "" {
			m.Path = filepath.Join(o.DirPath, m.File)
		}
		e.byVersion[m.Version] = m
		if m.Version > e.head {
			e.head = m.Version
		}
	}
	h := newSetHash()
	for _, m := range e.migrations {
		h.add(m.Version, m.Checksum)
	}
	e.headHash = h.sum()
	return e, nil
}

// Head is the newest migration version (0 when there are none).
func (e *Engine) Head() int64 { return e.head }

// Migrations returns the parsed migrations in version order.
func (e *Engine) Migrations() []Migration { return append([]Migration(nil), e.migrations...) }

// DirName names the migrations directory in messages.
func (e *Engine) DirName() string { return e.opts.DirName }

// BusyTimeout is how long the engine waits for locks.
func (e *Engine) BusyTimeout() time.Duration { return e.opts.BusyTimeout }
