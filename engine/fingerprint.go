package engine

import (
	"encoding/binary"
	"errors"
	"io/fs"
	"os"
	"strconv"
	"syscall"
)

// fingerprint identifies one state of a DB file on disk: the file and its
// WAL, by inode, size, and modification and change times in nanoseconds. A
// file deleted, recreated, replaced, written or checkpointed gets another
// fingerprint. In WAL mode commits land in the -wal file and the main file's
// header and mtime stay stale until a checkpoint, so the WAL is part of it.
type fingerprint struct {
	db, wal fileID
	// walMode: the header says WAL (byte 18 = 2). Only then can a commit
	// leave the main file untouched, so only then is the -wal stat()ed on
	// the hot path. Switching a DB into WAL mode rewrites its header, which
	// changes the main file's fingerprint.
	walMode bool
}

type fileID struct {
	dev, ino     uint64
	size         int64
	mtime, ctime int64
}

// statID stats one file; a missing file is the zero fileID.
func statID(path string) (fileID, error) {
	fi, err := os.Stat(path)
	if err != nil {
		if os.IsNotExist(err) {
			return fileID{}, nil
		}
		return fileID{}, err
	}
	return fileIDOf(fi), nil
}

func fileIDOf(fi os.FileInfo) fileID {
	id := fileID{size: fi.Size(), mtime: fi.ModTime().UnixNano()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		id.dev, id.ino = uint64(st.Dev), st.Ino
		id.ctime = st.Ctim.Sec*1e9 + st.Ctim.Nsec
	}
	return id
}

// headerAtHead reports, from the header read by inspectFile, that the
// DB carries shoal's mark and the fingerprint of exactly this migration set,
// without SQLite opening the file. The header on disk is trusted only in
// rollback-journal mode (in WAL mode it is stale until a checkpoint), with
// no -journal beside the file (no transaction in progress or to roll back),
// and with the file unchanged since the stat taken before the read: a
// writer that changed page 1 meanwhile, or rolled it back, changed its
// mtime. Anything else falls back to asking SQLite.
func (e *Engine) headerAtHead(path string, fp fingerprint, hdr [100]byte) bool {
	if fp.walMode || hdr[18] != 1 ||
		int64(binary.BigEndian.Uint32(hdr[68:72])) != shoalAppID ||
		int64(int32(binary.BigEndian.Uint32(hdr[60:64]))) != e.headHash {
		return false
	}
	if _, err := os.Lstat(path + "-journal"); !errors.Is(err, fs.ErrNotExist) {
		return false
	}
	now, err := statID(path)
	return err == nil && now == fp.db
}

// cachedAtHead reports whether this handle verified path at head and the
// file has not changed since: one stat() (two for a DB in WAL mode).
func (e *Engine) cachedAtHead(path string) bool {
	_, ok := e.cachedFingerprint(path)
	return ok
}

// cachedFingerprint is cachedAtHead with the fingerprint it confirmed.
func (e *Engine) cachedFingerprint(path string) (fingerprint, bool) {
	e.mu.Lock()
	fp, ok := e.cache[path]
	e.mu.Unlock()
	if !ok {
		return fingerprint{}, false
	}
	db, err := statID(path)
	if err != nil || db != fp.db {
		return fingerprint{}, false
	}
	if !fp.walMode {
		return fp, true
	}
	wal, err := statID(path + "-wal")
	return fp, err == nil && sameWAL(wal, fp.wal)
}

// sameWAL compares two states of a -wal: a missing and an empty -wal hold
// no frames, so they are one state (SQLite's open creates the file that a
// checkpoint on close may remove; a checkpoint that empties it changes the
// main file instead).
func sameWAL(a, b fileID) bool { return a == b || (a.size == 0 && b.size == 0) }

// String is the fingerprint as text (Probe.State).
func (fp fingerprint) String() string {
	s := fp.db.String()
	switch {
	case fp.walMode && fp.wal.size == 0:
		s += " wal -" // missing or empty: one state (sameWAL)
	case fp.walMode:
		s += " wal " + fp.wal.String()
	}
	return s
}

func (id fileID) String() string {
	return strconv.FormatUint(id.dev, 10) + "/" + strconv.FormatUint(id.ino, 10) + "/" + strconv.FormatInt(id.size, 10) + "/" +
		strconv.FormatInt(id.mtime, 10) + "/" + strconv.FormatInt(id.ctime, 10)
}

// DefaultAtHeadCache is how many DBs verified at head an Engine remembers
// by default (about 150 bytes each).
const DefaultAtHeadCache = 1 << 16

// SetAtHeadCache bounds how many DBs verified at head this handle
// remembers: n > 0 entries, 0 the default (DefaultAtHeadCache), n < 0 none
// (one-shot commands that never see a path twice). When full, an arbitrary
// entry makes room: over a fleet larger than the cache, read round after
// round, that keeps a fixed share of it cached where least-recently-used
// eviction would keep none.
func (e *Engine) SetAtHeadCache(n int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.cacheMax = n
	if n < 0 {
		clear(e.cache)
	}
	for max := e.maxCached(); len(e.cache) > max; {
		for k := range e.cache {
			delete(e.cache, k)
			break
		}
	}
}

func (e *Engine) maxCached() int {
	switch {
	case e.cacheMax < 0:
		return 0
	case e.cacheMax == 0:
		return DefaultAtHeadCache
	}
	return e.cacheMax
}

// rememberAtHead records that path, as fingerprinted before it was read,
// was verified at head.
func (e *Engine) rememberAtHead(path string, fp fingerprint) {
	e.mu.Lock()
	defer e.mu.Unlock()
	max := e.maxCached()
	if max == 0 {
		return
	}
	if _, ok := e.cache[path]; !ok && len(e.cache) >= max {
		for k := range e.cache { // an arbitrary entry (see SetAtHeadCache)
			delete(e.cache, k)
			break
		}
	}
	e.cache[path] = fp
}

// atHeadCached is how many DBs the at-head cache holds (tests).
func (e *Engine) atHeadCached() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.cache)
}

// forget drops path from the cache (it was changed through this handle).
func (e *Engine) forget(path string) {
	e.mu.Lock()
	delete(e.cache, path)
	e.mu.Unlock()
}

// Forget drops path from the handle's cache of DBs verified at head, for a
// caller that removes or rewrites a file it migrated through this handle
// (the next Migrate then checks it again).
func (e *Engine) Forget(path string) { e.forget(path) }
