// Command natsd is the NATS server (github.com/nats-io/nats-server/v2, the
// version pinned in go.mod) built as a static binary, so that the e2e tests
// can build a FROM-scratch NATS image on machines without an image registry.
// It takes the same flags as the official nats-server binary (-js, -sd DIR,
// -m 8222, ...). Users run the official nats image instead; see docs/deploy.md.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/nats-io/nats-server/v2/server"
)

func main() {
	const exe = "nats-server"
	fs := flag.NewFlagSet(exe, flag.ExitOnError)
	fs.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: nats-server [-js] [-sd DIR] [-m PORT] [-p PORT] [-c FILE] ... (the flags of the official nats-server)")
		os.Exit(2)
	}
	opts, err := server.ConfigureOptions(fs, os.Args[1:],
		server.PrintServerAndExit,
		fs.Usage,
		server.PrintTLSHelpAndDie)
	if err != nil {
		server.PrintAndDie(fmt.Sprintf("%s: %s", exe, err))
	} else if opts.CheckConfig {
		fmt.Fprintf(os.Stderr, "%s: configuration file %s is valid\n", exe, opts.ConfigFile)
		os.Exit(0)
	}
	server.RedactArgs(os.Args)
	s, err := server.NewServer(opts)
	if err != nil {
		server.PrintAndDie(fmt.Sprintf("%s: %s", exe, err))
	}
	s.ConfigureLogger()
	if err := server.Run(s); err != nil {
		server.PrintAndDie(err.Error())
	}
	s.WaitForShutdown()
}
