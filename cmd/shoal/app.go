package main

import (
	"io"

	"github.com/urfave/cli/v2"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// newApp builds the command tree. Output goes to stdout/stderr given, so
// tests can run the CLI in process.
func newApp(stdout, stderr io.Writer) *cli.App {
	app := &cli.App{
		Name:    "shoal",
		Usage:   "migrate the schemas of per-tenant SQLite databases: one file or a fleet",
		Version: versionString(),
		Description: "shoal applies numbered migrations to SQLite files atomically (one BEGIN IMMEDIATE\n" +
			"transaction per run), under a lock against other migrators, with foreign keys safe.\n" +
			"Fleets are migrated by a producer and workers over NATS JetStream; `shoal run`\n" +
			"does it all in one process over an embedded NATS server.",
		Writer:    stdout,
		ErrWriter: stderr,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "log-format", Value: "json", Usage: "log format on stderr: json or console", EnvVars: []string{"SHOAL_LOG_FORMAT"}},
			&cli.StringFlag{Name: "log-level", Value: "info", Usage: "log level: debug, info, warn, error", EnvVars: []string{"SHOAL_LOG_LEVEL"}},
		},
		Commands:             commands(),
		Before:               checkGlobal,
		EnableBashCompletion: true,
		OnUsageError: func(c *cli.Context, err error, _ bool) error {
			return usageError("%s", err.Error())
		},
		ExitErrHandler: func(*cli.Context, error) {}, // run() maps errors to exit codes
	}
	tidyCommands(app.Commands, "")
	return app
}
