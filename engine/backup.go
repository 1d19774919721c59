package engine

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	sqlite "modernc.org/sqlite"
)

// Sentinels of the safety helpers (backup and restore). Their errors are
// *Error values (Op "backup" or "restore") that also wrap ErrCorrupt, ErrLocked or ErrNotFound
// when that is the cause, so errors.Is works for both.
var (
	// ErrBackup: a backup could not be taken; nothing was left behind.
	ErrBackup = errors.New("backup failed")
	// ErrRestore: a restore was refused or failed; the DB was left as it was.
	ErrRestore = errors.New("restore failed")
)

// BackupOptions say where backups go and how many are kept.
type BackupOptions struct {
	// Dir is the backup directory; "" puts backups beside the database.
	// The directory must exist.
	Dir string
	// Root, with Dir set, mirrors the database's path relative to Root
	// under Dir (subdirectories are created). Without Root, backups are
	// written flat into Dir.
	Root string
	// Keep > 0 keeps the newest Keep backups of this database and deletes
	// older ones after a successful backup. 0 keeps everything.
	Keep int
	// KeepFor > 0 deletes, after a successful backup, this database's
	// backups older than KeepFor (by the time in their names). The backup
	// just taken is never deleted.
	KeepFor time.Duration
	// ReuseKey names the job a backup is taken for (a fleet worker: run id
	// and job id). A backup taken with the same key is reused, instead of
	// taking another, when the database has not changed since: see
	// backup_reuse.go. "" always takes a new backup.
	ReuseKey string
}

// backupNow is the clock used for backup names (tests pin it).
var backupNow = time.Now

// backupStepPages is how many pages one backup step copies between checks
// of the context.
const backupStepPages = 4096

// Backup takes a consistent copy of the database at path through SQLite's
// online backup API (committed rows still in a -wal file included; the
// copy keeps the source's journal mode), checks it with PRAGMA quick_check,
// fsyncs it and its directory and returns its path:
// <dir>/<base>.<UTC yyyymmddThhmmss.nnnnnnnnn>[-N].bak. The copy is written
// under a temporary name and linked into place without overwriting, so two
// backups never share a name. On any error nothing is left behind.
func Backup(ctx context.Context, path string, o BackupOptions) (string, error) {
	fail := func(file string, cause error, detail, hint string, err error) error {
		return &Error{Op: "backup", Path: path, File: file, Kind: ErrBackup, Cause: cause, Detail: detail, Hint: hint, Err: err}
	}
	st, err := os.Stat(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", fail("", ErrNotFound, "the database file does not exist", "check --db", nil)
		}
		return "", fail("", nil, "cannot stat the database", "check the path and its permissions", err)
	}
	if !st.Mode().IsRegular() {
		return "", fail("", nil, "not a regular file", "point --db at a SQLite database file", nil)
	}
	var before reuseState
	var trusted bool
	if o.ReuseKey != "" {
		if dir, _, err := backupDir(path, o); err == nil {
			if bak := reusableBackup(dir, path, o.ReuseKey); bak != "" {
				return bak, nil
			}
		}
		before, trusted = dbReuseState(path)
	}
	final, err := placeBackup(path, o, fail, func(tmpName string) error {
		if err := onlineBackup(ctx, path, tmpName); err != nil {
			var se *Error
			if errors.As(err, &se) && se.Op != "" {
				return err
			}
			if ctx.Err() != nil {
				return fail("", nil, "interrupted", "run the backup again", err)
			}
			cause := error(nil)
			if isNotADB(err) {
				cause = ErrCorrupt
			}
			return fail("", cause, "SQLite could not copy the database", "check the database with `sqlite3 PATH 'PRAGMA quick_check'`", err)
		}
		if err := quickCheckFile(ctx, tmpName); err != nil {
			return fail("", ErrCorrupt, "the copy fails PRAGMA quick_check, so the database itself is damaged; the copy was deleted", "restore the database from an earlier backup", err)
		}
		if err := syncFile(tmpName); err != nil {
			return fail(tmpName, nil, "cannot fsync the copy", "check the backup disk", err)
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	if o.ReuseKey != "" {
		after, ok := dbReuseState(path)
		rememberBackup(filepath.Dir(final), path, o.ReuseKey, final, before, trusted && ok && after == before)
	}
	if o.Keep > 0 || o.KeepFor > 0 {
		// Pruning problems do not undo a good backup.
		_ = pruneBackups(filepath.Dir(final), filepath.Base(path), o.Keep, o.KeepFor, backupNow(), final)
	}
	return final, nil
}

// placeBackup writes a backup of path: it resolves (and for mirrored
// layouts creates) the backup directory, lets fill write a hidden temporary
// file there, links it into place under a fresh name without overwriting
// and fsyncs the directory. Errors are fail's, or fill's as they are; on
// any error the temporary file and the directories it created are removed.
func placeBackup(path string, o BackupOptions, fail func(file string, cause error, detail, hint string, err error) error, fill func(tmp string) error) (string, error) {
	dir, created, err := backupDir(path, o)
	if err != nil {
		var dp *dirProblem
		if errors.As(err, &dp) {
			return "", fail(dp.dir, nil, dp.detail, dp.hint, dp.err)
		}
		return "", fail(o.Dir, nil, "cannot use the backup directory", "check BackupOptions.Dir", err)
	}
	cleanupDirs := func() {
		for i := len(created) - 1; i >= 0; i-- {
			_ = os.Remove(created[i]) // only removes it while empty
		}
	}
	base := filepath.Base(path)
	removeTempLeftovers(dir, base, ".bak-tmp")
	tmp, err := createLockedTemp(dir, "."+base+".*.bak-tmp", dbPerm(path))
	if err != nil {
		cleanupDirs()
		return "", fail(dir, nil, "cannot write in the backup directory", "make it writable by this user or choose another BackupOptions.Dir", err)
	}
	tmpName := tmp.Name()
	// The flock on tmp tells a later run's cleanup that this file is in
	// use; it goes when the descriptor closes, after the file has its name.
	defer tmp.Close()
	removeTmp := func() {
		_ = os.Remove(tmpName)
		_ = os.Remove(tmpName + "-journal")
		cleanupDirs()
	}
	if err := fill(tmpName); err != nil {
		removeTmp()
		return "", err
	}
	if placeBackupHook != nil {
		placeBackupHook(tmpName)
	}
	final, err := linkNoClobber(tmpName, dir, base, backupNow().UTC())
	if err != nil {
		removeTmp()
		return "", fail(dir, nil, "cannot name the backup", "check the backup directory", err)
	}
	_ = os.Remove(tmpName)
	if err := syncDir(dir); err != nil {
		_ = os.Remove(final)
		cleanupDirs()
		return "", fail(dir, nil, "cannot fsync the backup directory", "check the backup disk", err)
	}
	return final, nil
}

// placeBackupHook, when set (tests only), runs with the filled temporary
// file before it is given its name.
var placeBackupHook func(tmp string)

// dirProblem is a backup directory problem, turned into an *Error (Op "backup").
type dirProblem struct {
	dir, detail, hint string
	err               error
}

func (d *dirProblem) Error() string { return d.dir + ": " + d.detail }

// backupDir resolves (and for mirrored layouts creates) the directory a
// backup of path goes to. created lists directories it made, outermost
// first, so a failed backup can remove them again.
func backupDir(path string, o BackupOptions) (dir string, created []string, err error) {
	if o.Dir == "" {
		return filepath.Dir(path), nil, nil
	}
	st, serr := os.Stat(o.Dir)
	switch {
	case serr != nil && (errors.Is(serr, fs.ErrNotExist) || errors.Is(serr, syscall.ENOTDIR)):
		return "", nil, &dirProblem{o.Dir, "the backup directory does not exist", "create it or fix BackupOptions.Dir", serr}
	case serr != nil:
		return "", nil, &dirProblem{o.Dir, "cannot access the backup directory", "check its permissions", serr}
	case !st.IsDir():
		return "", nil, &dirProblem{o.Dir, "the backup directory is not a directory", "fix BackupOptions.Dir", nil}
	}
	if o.Root == "" {
		return o.Dir, nil, nil
	}
	absRoot, err1 := filepath.Abs(o.Root)
	absPath, err2 := filepath.Abs(path)
	if err := errors.Join(err1, err2); err != nil {
		return "", nil, &dirProblem{o.Root, "cannot resolve the root", "pass an absolute BackupOptions.Root", err}
	}
	rel, rerr := filepath.Rel(absRoot, absPath)
	if rerr != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return "", nil, &dirProblem{o.Root, "the database is not under the root", "pass the BackupOptions.Root the database lives under, or no BackupOptions.Root for a flat backup directory", rerr}
	}
	dir = filepath.Join(o.Dir, filepath.Dir(rel))
	// Record the directories MkdirAll is about to create.
	for d := dir; d != o.Dir && d != "." && d != string(filepath.Separator); d = filepath.Dir(d) {
		if _, err := os.Lstat(d); err == nil {
			break
		}
		created = append([]string{d}, created...)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		for i := len(created) - 1; i >= 0; i-- {
			_ = os.Remove(created[i])
		}
		return "", nil, &dirProblem{dir, "cannot create the mirrored backup directory", "make the backup directory writable by this user or choose another BackupOptions.Dir", err}
	}
	for _, d := range created {
		_ = syncDir(filepath.Dir(d))
	}
	return dir, created, nil
}

// safetyDSN builds a modernc.org/sqlite URI DSN for path with the given query.
func safetyDSN(path, query string) string {
	p := escapeURIPath(path)
	if query == "" {
		return "file:" + p
	}
	return "file:" + p + "?" + query
}

// onlineBackup copies src to the (empty) file dst with sqlite3_backup_*,
// inside one read transaction on the source so the copy is one consistent
// snapshot even though it is copied in steps (the context is checked
// between steps; in WAL mode writers are not blocked).
func onlineBackup(ctx context.Context, src, dst string) (err error) {
	// mode=rw: never creates the file, and a hot journal left by a crash is
	// rolled back before copying.
	db, err := sql.Open("sqlite", safetyDSN(src, "mode=rw&_pragma=busy_timeout(30000)"))
	if err != nil {
		return err
	}
	defer db.Close()
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "BEGIN"); err != nil {
		return err
	}
	defer func() {
		if _, rerr := conn.ExecContext(context.Background(), "ROLLBACK"); rerr != nil && err == nil {
			err = rerr
		}
	}()
	var n int
	if err := conn.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_schema").Scan(&n); err != nil {
		return err
	}
	// The destination is a fresh private file: no journal, no syncs (it is
	// fsynced once, after quick_check).
	dstDSN := safetyDSN(dst, "_pragma=journal_mode(off)&_pragma=synchronous(off)")
	return conn.Raw(func(dc any) error {
		bk, ok := dc.(onlineBackuper)
		if !ok {
			return errors.New("the SQLite driver does not offer the online backup API")
		}
		b, err := bk.NewBackup(dstDSN)
		if err != nil {
			return err
		}
		for more := true; more; {
			if err := ctx.Err(); err != nil {
				_ = b.Finish()
				return err
			}
			if more, err = b.Step(backupStepPages); err != nil {
				_ = b.Finish()
				return err
			}
		}
		return b.Finish()
	})
}

// quickCheckFile runs PRAGMA quick_check on a file nobody else writes,
// opened immutable and read-only so no -wal/-shm/-journal is created.
func quickCheckFile(ctx context.Context, path string) error {
	db, err := sql.Open("sqlite", safetyDSN(path, "mode=ro&immutable=1"))
	if err != nil {
		return err
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, "PRAGMA quick_check")
	if err != nil {
		return err
	}
	defer rows.Close()
	var msgs []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return err
		}
		if s != "ok" && len(msgs) < 5 {
			msgs = append(msgs, s)
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if len(msgs) > 0 {
		return errors.New("quick_check: " + strings.Join(msgs, "; "))
	}
	return nil
}

// isNotADB reports SQLite's "not a database" / "malformed" errors.
func isNotADB(err error) bool {
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff {
		case 26, 11: // SQLITE_NOTADB, SQLITE_CORRUPT
			return true
		}
	}
	s := err.Error()
	return strings.Contains(s, "not a database") || strings.Contains(s, "malformed")
}

// backupName is <base>.<UTC yyyymmddThhmmss.nnnnnnnnn>[-N].bak.
func backupName(base string, t time.Time, n int) string {
	ts := t.Format("20060102T150405") + fmt.Sprintf(".%09d", t.Nanosecond())
	if n > 0 {
		return fmt.Sprintf("%s.%s-%d.bak", base, ts, n)
	}
	return base + "." + ts + ".bak"
}

// linkNoClobber gives the temporary file its final name with link(2), which
// fails instead of overwriting an existing backup; a taken name gets a
// counter.
func linkNoClobber(tmp, dir, base string, t time.Time) (string, error) {
	for n := 0; n < 1000; n++ {
		final := filepath.Join(dir, backupName(base, t, n))
		err := os.Link(tmp, final)
		if err == nil {
			return final, nil
		}
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		// No hard links on this file system: rename, after checking the name
		// is free (a tiny race remains there, on such file systems only).
		if _, serr := os.Lstat(final); errors.Is(serr, fs.ErrNotExist) {
			if rerr := os.Rename(tmp, final); rerr == nil {
				return final, nil
			}
		}
		return "", err
	}
	return "", errors.New("too many backups with the same timestamp")
}

// backupFile is one backup of a tenant found in a backup directory.
type backupFile struct {
	name string
	ts   string
	n    int
}

// listBackups returns the backups of base in dir, oldest first.
func listBackups(dir, base string) ([]backupFile, error) {
	groups, _, err := scanBackups(dir)
	return groups[base], err
}

// pruneBackups deletes the backups of base in dir that are not among the
// newest keep (keep > 0) or are older than keepFor (keepFor > 0, by the time
// in their names, relative to now); the newest backup and the backup just
// taken are never deleted.
func pruneBackups(dir, base string, keep int, keepFor time.Duration, now time.Time, just string) error {
	files, err := listBackups(dir, base)
	if err != nil {
		return err
	}
	_, errs := pruneList(dir, files, keep, keepFor, now, filepath.Base(just), false)
	_ = syncDir(dir)
	return errors.Join(errs...)
}

// pruneList applies the retention rule to one DB's backups (oldest first)
// and returns the names it deleted (or would delete, dryRun).
func pruneList(dir string, files []backupFile, keep int, keepFor time.Duration, now time.Time, justName string, dryRun bool) ([]backupFile, []error) {
	kept := 0
	if justName != "" && containsName(files, justName) {
		kept = 1 // the backup just taken always counts and is never deleted
	}
	var gone []backupFile
	var errs []error
	for i := len(files) - 1; i >= 0; i-- {
		f := files[i]
		if f.name == justName || i == len(files)-1 && justName == "" {
			if justName == "" {
				kept++
			}
			continue // the newest is never deleted
		}
		old := false
		if keepFor > 0 {
			if t, err := time.Parse("20060102T150405.000000000", f.ts); err == nil && now.Sub(t) > keepFor {
				old = true
			}
		}
		if !old && (keep <= 0 || kept < keep) {
			kept++
			continue
		}
		if !dryRun {
			if err := os.Remove(filepath.Join(dir, f.name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, err)
				continue
			}
		}
		gone = append(gone, f)
	}
	return gone, errs
}

func containsName(files []backupFile, name string) bool {
	for _, f := range files {
		if f.name == name {
			return true
		}
	}
	return false
}

func syncFile(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) {
		return err
	}
	return nil
}

// createLockedTemp creates a temporary file like os.CreateTemp, holds an
// exclusive flock on it (so removeTempLeftovers never deletes a file a live
// process is writing) and gives it the mode perm (the DB's own bits: a 0600
// DB never yields a wider copy). The caller closes it when done.
func createLockedTemp(dir, pattern string, perm os.FileMode) (*os.File, error) {
	for attempt := 0; ; attempt++ {
		f, err := os.CreateTemp(dir, pattern)
		if err != nil {
			return nil, err
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			f.Close()
			os.Remove(f.Name())
			return nil, err
		}
		// A cleanup that ran between the create and the flock may have
		// removed the name: then take another one.
		fi, err1 := f.Stat()
		li, err2 := os.Lstat(f.Name())
		if err1 == nil && err2 == nil && os.SameFile(fi, li) {
			if err := f.Chmod(perm); err != nil {
				f.Close()
				os.Remove(f.Name())
				return nil, err
			}
			return f, nil
		}
		f.Close()
		if attempt == 3 {
			return nil, errors.New("temporary file removed while being created")
		}
	}
}

// removeTempLeftovers deletes, in dir, the temporary files of base that a
// killed backup (".bak-tmp") or restore (".restore-tmp") left:
// ".<base>.<random digits><suffix>", with any -journal. A file whose creator
// is alive holds a flock and is left alone; a symlink with such a name is
// removed itself (its target is not touched).
func removeTempLeftovers(dir, base, suffix string) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	prefix := "." + base + "."
	for _, e := range ents {
		n := e.Name()
		if !strings.HasPrefix(n, prefix) || !strings.HasSuffix(n, suffix) || len(n) <= len(prefix)+len(suffix) {
			continue
		}
		if mid := n[len(prefix) : len(n)-len(suffix)]; strings.ContainsAny(mid, "./") {
			continue // another tenant's (base.x) or not ours
		}
		p := filepath.Join(dir, n)
		f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
		if err != nil {
			if errors.Is(err, syscall.ELOOP) {
				_ = os.Remove(p)
			}
			continue
		}
		if syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) == nil {
			if fi, err1 := f.Stat(); err1 == nil {
				if li, err2 := os.Lstat(p); err2 == nil && os.SameFile(fi, li) {
					_ = os.Remove(p)
					_ = os.Remove(p + "-journal")
				}
			}
		}
		f.Close()
	}
}
