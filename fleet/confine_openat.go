//go:build unix && !linux

package fleet

func resolveBeneath(root, tenant string) (fileID, error) { return resolveWalk(root, tenant) }
