// Package tenants is the fleet's storage side, with no NATS: the streaming
// walk of the tenant DBs under a root (Walk, ValidatePattern), the
// confinement of a tenant to a regular file beneath that root without
// following symlinks (ResolveTenant, TenantFromPath), the explanation of a
// root where the pattern matched nothing (ExplainEmpty, CheckRoot) and the
// local fleet status (Status).
//
// The producer walks with it, the workers confine each job's tenant with it,
// and `shoal fleet status` reads the fleet with it. A rejected tenant is
// reported in the wire vocabulary of package fleet (*fleet.RejectError).
package tenants
