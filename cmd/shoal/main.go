// Command shoal migrates the schemas of per-tenant SQLite database files:
// one file, or a whole fleet over NATS JetStream.
package main

import (
	"os"
)

func main() {
	os.Exit(run(os.Args, os.Stdout, os.Stderr))
}
