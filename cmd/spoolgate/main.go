// Command spoolgate is the operator's tool for a spoolgate gateway:
//
//	spoolgate check   [-config PATH] [-daemons LIST]  test the config and this host, like nginx -t; exit 0 or 2
//	spoolgate init    NAME [-listen ADDR] [-remote HOST:PORT]  the config of one more instance (partner) on this host
//	spoolgate send    -addr HOST:PORT [MESSAGE…]      send messages (or stdin lines), print each reply
//	spoolgate status  [-config PATH] [-json] [-age]   the running sender's state, else the directories'; exit 1 when a daemon expected here (-daemons) is down
//	spoolgate failed  [-config PATH] [-json]          failed files with reason, code, attempts, time
//	spoolgate requeue [-config PATH] (-all | FILE…)   move failed files back into the spool
//	spoolgate trace   [-config PATH] FIELD=VALUE…     every journal event of the matching messages
//	spoolgate bench   -addr HOST:PORT -c N -n COUNT   load generator; -null ADDR serves the reference
//	spoolgate -version                                version, commit and Go version
//
// Exit codes: 0 success, 1 failure (a reply other than 200, a connection
// error, a daemon expected on this host that does not run), 2 bad usage or
// a bad config.
package main

import (
	"fmt"
	"io"
	"os"

	"spoolgate/internal/version"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

const usage = `usage: spoolgate COMMAND [flags]

commands:
  check    [-config PATH] [-daemons LIST]   test the config and this host like nginx -t (exit 0, or 2: one line a problem);
                                            -all: every instance of the config directory, and against each other
  init     NAME [-listen ADDR] [-remote HOST:PORT] [-state DIR] [-logs DIR]
                                            the config, directories and unit drop-ins of one more instance (partner)
  send     -addr HOST:PORT [MESSAGE...]     send messages (or stdin lines), print each reply
  status   [-config PATH] [-json] [-age]    the running sender's state (circuit, remotes, pending, failed), else the directories';
                                            exit 1 when a daemon expected here (-daemons LIST) is down
  failed   [-config PATH] [-json]           failed files with reason, code, attempts and time, newest last
  requeue  [-config PATH] (-all | FILE...)  move failed files back into the spool
  trace    [-config PATH] FIELD=VALUE...    every journal event of the matching messages, both daemons, in time order
  bench    -addr HOST:PORT -c N -n COUNT    load generator (-null ADDR serves the reference)

Run 'spoolgate COMMAND -h' for a command's arguments and flags, 'spoolgate -version' for the version.
`

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "check":
		return runCheck(rest, stdout, stderr)
	case "init":
		return runInit(rest, stdout, stderr)
	case "send":
		return runSend(rest, stdin, stdout, stderr)
	case "status":
		return runStatus(rest, stdout, stderr)
	case "failed":
		return runFailed(rest, stdout, stderr)
	case "requeue":
		return runRequeue(rest, stdout, stderr)
	case "trace":
		return runTrace(rest, stdout, stderr)
	case "bench":
		return runBench(rest, stdout, stderr)
	case "version", "-version", "--version":
		version.Print(stdout, "spoolgate")
		return 0
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "spoolgate: unknown command %q\n%s", cmd, usage)
	return 2
}
