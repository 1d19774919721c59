//go:build unix && !linux

package tenants

func resolveBeneath(root, tenant string) (fileID, error) { return resolveWalk(root, tenant) }
