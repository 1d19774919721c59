package engine

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"regexp"
	"strings"

	"modernc.org/sqlite"
)

// Function is a scalar SQL function of the application that migrations may
// call (a data migration that runs `UPDATE t SET b = BIN2B64(a)`), as the
// application registers it on its own connections.
//
// modernc.org/sqlite registers functions on a driver, for every connection
// it opens afterwards; its package-level registration is global to the
// process and refuses a second function of the same name. So an Engine
// with Functions opens its DBs through a driver of its own: two engines in
// one process may register different functions under the same name, and
// connections of the rest of the process are not touched.
type Function struct {
	// Name is the SQL name (case-insensitive in SQL).
	Name string
	// NArgs is the number of arguments; -1 takes any number.
	NArgs int32
	// Deterministic: the same arguments always give the same result (lets
	// SQLite use the function in indexes and CHECK constraints).
	Deterministic bool
	// Fn computes the result: nil, int64, float64, string or []byte.
	Fn func(args []driver.Value) (driver.Value, error)
}

var reFuncName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// newFunctionDriver builds the engine's own driver with its functions, or
// nil when there are none.
func newFunctionDriver(dirName string, fns []Function) (*sqlite.Driver, error) {
	if len(fns) == 0 {
		return nil, nil
	}
	d := &sqlite.Driver{}
	seen := map[string]bool{}
	for _, f := range fns {
		key := fmt.Sprintf("%s/%d", strings.ToLower(f.Name), f.NArgs)
		switch {
		case !reFuncName.MatchString(f.Name):
			return nil, &DirError{Dir: dirName, Reason: fmt.Sprintf("SQL function name %q is not a plain identifier: use letters, digits and '_'", f.Name)}
		case f.Fn == nil:
			return nil, &DirError{Dir: dirName, Reason: fmt.Sprintf("SQL function %s has no Fn: set it", f.Name)}
		case f.NArgs < -1 || f.NArgs > 127:
			return nil, &DirError{Dir: dirName, Reason: fmt.Sprintf("SQL function %s: NArgs %d is not -1 (any) or 0..127", f.Name, f.NArgs)}
		case seen[key]:
			return nil, &DirError{Dir: dirName, Reason: fmt.Sprintf("SQL function %s with %d arguments is registered twice: keep one", f.Name, f.NArgs)}
		}
		seen[key] = true
		fn := f.Fn
		impl := &sqlite.FunctionImpl{NArgs: f.NArgs, Deterministic: f.Deterministic,
			Scalar: func(_ *sqlite.FunctionContext, args []driver.Value) (driver.Value, error) { return fn(args) }}
		if err := d.RegisterFunction(f.Name, impl); err != nil {
			return nil, &DirError{Dir: dirName, Reason: fmt.Sprintf("SQL function %s: %v", f.Name, err)}
		}
	}
	return d, nil
}

// fnConnector opens connections through an engine's own driver.
type fnConnector struct {
	d   *sqlite.Driver
	dsn string
}

func (c fnConnector) Connect(context.Context) (driver.Conn, error) { return c.d.Open(c.dsn) }
func (c fnConnector) Driver() driver.Driver                        { return c.d }

// open opens path like openDB, through the engine's driver when it has
// application functions.
func (e *Engine) open(path string, readOnly bool) (*sql.DB, error) {
	if e.fnDriver == nil {
		return openDB(path, e.opts.BusyTimeout, readOnly)
	}
	db := sql.OpenDB(fnConnector{e.fnDriver, dsn(path, e.opts.BusyTimeout, readOnly)})
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	return db, nil
}

var reNoSuchFunction = regexp.MustCompile(`no such function: ([A-Za-z_][A-Za-z0-9_]*)`)

// MissingFunction reports an error that is SQLite's "no such function: X"
// and returns X: a migration calls a function that is neither SQLite's nor
// registered on the engine (Options.Functions).
func MissingFunction(err error) (string, bool) {
	if err == nil {
		return "", false
	}
	msg := err.Error()
	if me, ok := migrationError(err); ok && me.Err != nil {
		msg = me.Err.Error()
	}
	m := reNoSuchFunction.FindStringSubmatch(msg)
	if m == nil {
		return "", false
	}
	return m[1], true
}
