package main

import "github.com/urfave/cli/v2"

// Help groups the commands by category.
const (
	catDatabase   = "Database"
	catMigrations = "Migrations"
	catFleet      = "Fleet"
	catNATS       = "NATS"
	catSafety     = "Safety"
)

// commands is the whole command tree, in one place. Each command's flags
// and action live in its own file; the flags every NATS command takes
// (addNATSAuthFlags) and the layout flags (addLayoutFlags) are added here.
func commands() []*cli.Command {
	cmds := []*cli.Command{
		// One database.
		in(catDatabase, migrateCommand()),
		in(catDatabase, statusCommand()),
		in(catDatabase, diffCommand()),
		in(catDatabase, enrollCommand()),
		in(catDatabase, acceptCommand()),

		// Writing and checking migrations.
		in(catMigrations, initCommand()),
		in(catMigrations, newCommand()),
		in(catMigrations, schemaCommand()),
		in(catMigrations, checkCommand()),
		in(catMigrations, hashCommand()),
		in(catMigrations, renumberCommand()),
		in(catMigrations, autogenCommand()),

		// A fleet: in one process (run), or producer and workers over NATS.
		in(catFleet, runCommand()),
		in(catFleet, produceCommand()),
		in(catFleet, workCommand()),
		in(catFleet, enqueueCommand()),
		in(catFleet, resultsCommand()),
		in(catFleet, &cli.Command{
			Name:        "fleet",
			Usage:       "local fleet tools",
			Subcommands: []*cli.Command{fleetStatusCommand(), fleetEnrollCommand()},
		}),
		in(catFleet, demoFleetCommand()),

		// NATS administration.
		in(catNATS, natsCommand()),

		// Backups and undoing.
		in(catSafety, backupCommand()),
		in(catSafety, restoreCommand()),
		in(catSafety, downCommand()),
		in(catSafety, redoCommand()),
	}
	addNATSAuthFlags(cmds)
	addLayoutFlags(cmds)
	return cmds
}

// in sets a command's help category.
func in(category string, cmd *cli.Command) *cli.Command {
	cmd.Category = category
	return cmd
}
