package engine

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"syscall"
	"time"
)

// A backup taken for a job (BackupOptions.ReuseKey) is remembered in a
// small sidecar file in the backup directory, one per DB:
// .<base>.shoal-backup. A retry of the same job reuses that backup instead
// of taking another when the DB has not changed since: the same file (device,
// inode), size, modification and change times, the same -wal (or none), the
// same file change counter in the header (bytes 24..27), and no -journal
// beside it (a hot journal may hide a zeroed first page: only SQLite may
// judge such a file, so a new backup is taken).

// maxSidecar bounds what is read of a sidecar.
const maxSidecar = 16 << 10

type reuseState struct {
	DB      fileIDJSON `json:"db"`
	WAL     fileIDJSON `json:"wal"`
	Counter uint32     `json:"change_counter"`
}

type fileIDJSON struct {
	Dev   uint64 `json:"dev"`
	Ino   uint64 `json:"ino"`
	Size  int64  `json:"size"`
	Mtime int64  `json:"mtime_ns"`
	Ctime int64  `json:"ctime_ns"`
}

type sidecar struct {
	Key    string     `json:"key"`
	Backup string     `json:"backup"` // base name, in the same directory
	Size   int64      `json:"backup_size"`
	State  reuseState `json:"state"`
}

func sidecarPath(dir, base string) string { return filepath.Join(dir, "."+base+".shoal-backup") }

// dbReuseState reads the state of the DB that decides reuse; ok false when
// it cannot be trusted (a -journal exists, the file cannot be read).
func dbReuseState(path string) (reuseState, bool) {
	if _, err := os.Lstat(path + "-journal"); !errors.Is(err, fs.ErrNotExist) {
		return reuseState{}, false
	}
	db, err := statID(path)
	if err != nil || db.size < 100 {
		return reuseState{}, false
	}
	wal, err := statID(path + "-wal")
	if err != nil {
		return reuseState{}, false
	}
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return reuseState{}, false
	}
	defer f.Close()
	var hdr [28]byte
	if _, err := io.ReadFull(f, hdr[:]); err != nil {
		return reuseState{}, false
	}
	if again, err := statID(path); err != nil || again != db {
		return reuseState{}, false // written while read
	}
	j := func(id fileID) fileIDJSON { return fileIDJSON{id.dev, id.ino, id.size, id.mtime, id.ctime} }
	return reuseState{DB: j(db), WAL: j(wal), Counter: binary.BigEndian.Uint32(hdr[24:28])}, true
}

// reusableBackup returns the backup recorded for key in dir when the DB
// at path has not changed since it was taken, else "".
func reusableBackup(dir, path, key string) string {
	f, err := os.OpenFile(sidecarPath(dir, filepath.Base(path)), os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return ""
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxSidecar+1))
	if err != nil || len(data) > maxSidecar {
		return ""
	}
	var sc sidecar
	if json.Unmarshal(data, &sc) != nil || sc.Key != key || sc.Backup == "" || filepath.Base(sc.Backup) != sc.Backup {
		return ""
	}
	now, ok := dbReuseState(path)
	if !ok || now != sc.State {
		return ""
	}
	bak := filepath.Join(dir, sc.Backup)
	fi, err := os.Lstat(bak)
	if err != nil || !fi.Mode().IsRegular() || fi.Size() != sc.Size {
		return ""
	}
	return bak
}

// rememberBackup writes the sidecar for a backup just taken of path, for
// the state the DB had before it was taken (st, ok from dbReuseState).
// Failing to write it only means a retry takes another backup.
func rememberBackup(dir, path, key, backup string, st reuseState, ok bool) {
	side := sidecarPath(dir, filepath.Base(path))
	if !ok {
		_ = os.Remove(side)
		return
	}
	fi, err := os.Lstat(backup)
	if err != nil {
		return
	}
	data, err := json.Marshal(sidecar{Key: key, Backup: filepath.Base(backup), Size: fi.Size(), State: st})
	if err != nil {
		return
	}
	tmp, err := os.CreateTemp(dir, ".shoal-backup-*.tmp")
	if err != nil {
		return
	}
	_, werr := tmp.Write(data)
	cerr := tmp.Close()
	if werr != nil || cerr != nil || os.Rename(tmp.Name(), side) != nil {
		_ = os.Remove(tmp.Name())
	}
}

// PruneOptions say which backups PruneTree keeps.
type PruneOptions struct {
	// Keep > 0 keeps the newest Keep backups of each database.
	Keep int
	// KeepFor > 0 deletes backups older than this (by the time in their
	// names). The newest backup of each database is never deleted.
	KeepFor time.Duration
	// DryRun lists what would be deleted and deletes nothing.
	DryRun bool
	// Now is the time ages are measured from (default time.Now()).
	Now time.Time
}

// PruneStats is what PruneTree found and deleted.
type PruneStats struct {
	Databases    int      `json:"databases"`     // distinct databases with backups
	Backups      int      `json:"backups"`       // backups found
	Bytes        int64    `json:"bytes"`         // their size
	Deleted      []string `json:"deleted"`       // paths deleted (or to delete, dry run)
	DeletedBytes int64    `json:"deleted_bytes"` // their size
}

// PruneTree applies the retention rule of BackupOptions (Keep, KeepFor) to
// every database's backups under dir: shoal's backup names
// (<base>.<UTC timestamp>[-N].bak), grouped by directory and base name.
// Symbolic links are neither followed nor deleted; other files are left
// alone. Sidecars of backups that no longer exist are removed.
func PruneTree(dir string, o PruneOptions) (*PruneStats, error) {
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	st := &PruneStats{Deleted: []string{}}
	if fi, err := os.Lstat(dir); err != nil {
		return nil, fmt.Errorf("backup directory %s: %w", dir, err)
	} else if !fi.IsDir() {
		return nil, fmt.Errorf("backup directory %s is not a directory", dir)
	}
	var errs []error
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			errs = append(errs, err)
			return nil
		}
		if !d.IsDir() {
			return nil
		}
		groups, sizes, err := scanBackups(p)
		if err != nil {
			errs = append(errs, err)
			return nil
		}
		bases := make([]string, 0, len(groups))
		for b := range groups {
			bases = append(bases, b)
		}
		sort.Strings(bases)
		for _, base := range bases {
			files := groups[base]
			st.Databases++
			st.Backups += len(files)
			for _, f := range files {
				st.Bytes += sizes[f.name]
			}
			gone, derrs := pruneList(p, files, o.Keep, o.KeepFor, o.Now, "", o.DryRun)
			errs = append(errs, derrs...)
			for _, g := range gone {
				st.Deleted = append(st.Deleted, filepath.Join(p, g.name))
				st.DeletedBytes += sizes[g.name]
			}
			if !o.DryRun && len(gone) > 0 {
				forgetMissing(p, base)
			}
		}
		if !o.DryRun && len(groups) > 0 {
			_ = syncDir(p)
		}
		return nil
	})
	if err != nil {
		errs = append(errs, err)
	}
	return st, errors.Join(errs...)
}

var backupNameRE = regexp.MustCompile(`^(.+)\.(\d{8}T\d{6}\.\d{9})(?:-(\d+))?\.bak$`)

// scanBackups lists the backups in dir (regular files only), by base name,
// oldest first, and their sizes.
func scanBackups(dir string) (map[string][]backupFile, map[string]int64, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, err
	}
	groups := map[string][]backupFile{}
	sizes := map[string]int64{}
	for _, e := range ents {
		m := backupNameRE.FindStringSubmatch(e.Name())
		if m == nil || !e.Type().IsRegular() {
			continue
		}
		n := 0
		if m[3] != "" {
			n, _ = strconv.Atoi(m[3])
		}
		if fi, err := e.Info(); err == nil {
			sizes[e.Name()] = fi.Size()
		}
		groups[m[1]] = append(groups[m[1]], backupFile{name: e.Name(), ts: m[2], n: n})
	}
	for _, files := range groups {
		sort.Slice(files, func(i, j int) bool {
			if files[i].ts != files[j].ts {
				return files[i].ts < files[j].ts
			}
			return files[i].n < files[j].n
		})
	}
	return groups, sizes, nil
}

// forgetMissing removes base's sidecar in dir when its backup is gone.
func forgetMissing(dir, base string) {
	side := sidecarPath(dir, base)
	f, err := os.OpenFile(side, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return
	}
	data, _ := io.ReadAll(io.LimitReader(f, maxSidecar+1))
	f.Close()
	var sc sidecar
	if json.Unmarshal(data, &sc) == nil && filepath.Base(sc.Backup) == sc.Backup && sc.Backup != "" {
		if _, err := os.Lstat(filepath.Join(dir, sc.Backup)); err == nil {
			return
		}
	}
	_ = os.Remove(side)
}

// BackupUsage counts shoal's backups under dir and their size (symbolic
// links are not followed).
func BackupUsage(dir string) (count int, bytes int64, err error) {
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == dir {
				return err
			}
			return nil
		}
		if d.Type().IsRegular() && backupNameRE.MatchString(d.Name()) {
			if fi, err := d.Info(); err == nil {
				count++
				bytes += fi.Size()
			}
		}
		return nil
	})
	return count, bytes, err
}
