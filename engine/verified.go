package engine

// VerifiedAtHead reports whether this handle verified the DB at path at
// head (by Version or Migrate, through the header's migration-set
// fingerprint) and the file has not changed since: exactly the case in which
// Migrate returns `current` at once. It costs one stat() (two in WAL mode)
// and never opens the file.
func (e *Engine) VerifiedAtHead(path string) bool { return e.cachedAtHead(path) }
