package engine

// foreignTables are the bookkeeping tables of other migration tools: shoal
// leaves them as they are and leaves them out of schema comparisons.
var foreignTables = map[string]bool{
	"schema_migrations":          true, // golang-migrate, dbmate, Rails
	"ar_internal_metadata":       true, // Rails
	"goose_db_version":           true,
	"__diesel_schema_migrations": true,
	"_sqlx_migrations":           true,
	"flyway_schema_history":      true,
	"refinery_schema_history":    true,
	"_prisma_migrations":         true,
	"atlas_schema_revisions":     true,
	"_meta":                      true, // fastmigrate
	"alembic_version":            true,
}
