package engine

import (
	"os"
	"path/filepath"
	"sync"
)

// POSIX record locks belong to a process and a file: closing ANY descriptor
// of a DB file drops every lock this process holds on it, SQLite's included
// (a WAL connection's SHARED lock, the EXCLUSIVE lock of a write). SQLite
// guards its own descriptors against that; shoal's own reads of a DB file
// (the header, outside SQLite) must too. Without it, another process's last
// connection, seeing no lock, checkpoints and deletes the -wal and unlinks
// the -shm under shoal's open connections (measured: an application
// process's commit made during a step became invisible to shoal's second
// connection, and was then overwritten).
//
// So the engine counts its SQLite connections per DB path (sqliteInUse), and
// a raw descriptor of a DB file is closed with closeRaw: at once when no
// connection of the engine has that DB open, otherwise when the last one
// is closed.
var rawFDs = struct {
	sync.Mutex
	inUse  map[string]int
	parked map[string][]*os.File
}{inUse: map[string]int{}, parked: map[string][]*os.File{}}

func fdKey(path string) string {
	if abs, err := filepath.Abs(path); err == nil {
		return abs
	}
	return filepath.Clean(path)
}

// sqliteInUse records that the engine opens SQLite connections on path; the
// returned function, called after they are all closed, closes the raw
// descriptors parked meanwhile.
func sqliteInUse(path string) (release func()) {
	k := fdKey(path)
	rawFDs.Lock()
	rawFDs.inUse[k]++
	rawFDs.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			rawFDs.Lock()
			rawFDs.inUse[k]--
			var fds []*os.File
			if rawFDs.inUse[k] <= 0 {
				delete(rawFDs.inUse, k)
				fds = rawFDs.parked[k]
				delete(rawFDs.parked, k)
			}
			rawFDs.Unlock()
			for _, f := range fds {
				f.Close()
			}
		})
	}
}

// rawInUse reports whether the engine has SQLite connections open on path
// (a raw descriptor of it must then be parked, not closed).
func rawInUse(path string) bool {
	_, ok := inUseKey(path)
	return ok
}

// inUseKey returns path's key (fdKey) when the engine has SQLite
// connections open on it.
func inUseKey(path string) (string, bool) {
	rawFDs.Lock()
	none := len(rawFDs.inUse) == 0
	rawFDs.Unlock()
	if none {
		// No connection open on any DB: the common case of a status or
		// a re-check, spared fdKey's getcwd for a relative path (two
		// stat calls per DB).
		return "", false
	}
	k := fdKey(path)
	rawFDs.Lock()
	defer rawFDs.Unlock()
	return k, rawFDs.inUse[k] > 0
}

// closeRaw closes a descriptor shoal opened on the DB file at path outside
// SQLite, or parks it until the engine's SQLite connections to path are
// closed.
func closeRaw(path string, f *os.File) {
	if k, ok := inUseKey(path); ok {
		rawFDs.Lock()
		if rawFDs.inUse[k] > 0 {
			rawFDs.parked[k] = append(rawFDs.parked[k], f)
			rawFDs.Unlock()
			return
		}
		rawFDs.Unlock()
	}
	f.Close()
}
