package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/mqttas/mqttas-go/mqttas"
)

const topUsage = `mqttas: a resilient MQTT 3.1.1 publish/subscribe pair that rides through outages.

Usage:
  mqttas pub [flags]     publish (like mosquitto_pub)
  mqttas sub [flags]     subscribe and print (like mosquitto_sub)
  mqttas proxy [flags]   a fault proxy for real devices, with Toxiproxy's API and a verdict
  mqttas version         print the version

Run "mqttas pub --help", "mqttas sub --help" or "mqttas proxy --help" for the flags. -h is the broker host, as in mosquitto.
`

// run is the whole command: ctx's end means SIGINT or SIGTERM (finish the publication in flight, disconnect
// cleanly, exit 3 if that cut the planned work short). It returns the exit code.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	stderr = &lockedWriter{w: stderr}
	if len(args) == 0 {
		fmt.Fprint(stderr, topUsage)
		return exitUsage
	}
	switch args[0] {
	case "pub":
		return runPub(ctx, args[1:], stdin, stdout, stderr)
	case "sub":
		return runSub(ctx, args[1:], stdout, stderr)
	case "proxy":
		return runProxy(ctx, args[1:], stdout, stderr)
	case "version", "--version", "-version":
		fmt.Fprintf(stdout, "mqttas %s\n", mqttas.Version)
		return exitOK
	case "help", "--help", "-help":
		fmt.Fprint(stdout, topUsage)
		return exitOK
	}
	fmt.Fprintf(stderr, "mqttas: unknown command %q: want pub, sub or proxy\n\n%s", args[0], topUsage)
	return exitUsage
}

// parse parses args into fs. done is true when run should return code at once (help, or a usage error).
func parse(fs *flag.FlagSet, args []string, stdout, stderr io.Writer, synopsis string) (code int, done bool) {
	fs.SetOutput(io.Discard) // run prints its own messages
	fs.Usage = func() {}
	err := fs.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		printUsage(stdout, fs, synopsis)
		return exitOK, true
	case err != nil:
		return usage(stderr, fs.Name(), err), true
	case fs.NArg() > 0:
		return usage(stderr, fs.Name(), usagef("unexpected argument %q (quote a message with spaces: -m 'a b')", fs.Arg(0))), true
	}
	return 0, false
}

// usage reports a usage error and returns exit code 1.
func usage(stderr io.Writer, cmd string, err error) int {
	fmt.Fprintf(stderr, "mqttas %s: %v\nRun \"mqttas %s --help\" for usage.\n", cmd, err, cmd)
	return exitUsage
}

// connect makes the first connection. It returns -1 on success, else the exit code after reporting why.
func connect(ctx context.Context, c *mqttas.Client, cmd, addr string, stderr io.Writer) int {
	err := c.Connect(ctx)
	if err == nil {
		return -1
	}
	if ctx.Err() != nil {
		fmt.Fprintf(stderr, "mqttas %s: interrupted while connecting to %s\n", cmd, addr)
		return exitInterrupted
	}
	var ce *mqttas.ConnackError
	if errors.As(err, &ce) {
		hint := ""
		switch ce.Code {
		case 4, 5:
			hint = " (check -u and -P)"
		case 2:
			hint = " (check -i)"
		}
		fmt.Fprintf(stderr, "mqttas %s: %s refused the connection: %s%s\n", cmd, addr, reasonOf(ce), hint)
		return exitConnect
	}
	fmt.Fprintf(stderr, "mqttas %s: the first connection failed: %v\n", cmd, err)
	return exitConnect
}

// reasonOf names a CONNACK return code.
func reasonOf(ce *mqttas.ConnackError) string {
	reasons := [...]string{1: "unacceptable protocol version", 2: "identifier rejected", 3: "server unavailable",
		4: "bad user name or password", 5: "not authorised"}
	r := "unknown reason"
	if int(ce.Code) < len(reasons) {
		r = reasons[ce.Code]
	}
	return fmt.Sprintf("%s (CONNACK return code %d)", r, ce.Code)
}

// disconnect ends the session cleanly (DISCONNECT, so no will) and stops the client.
func disconnect(c *mqttas.Client, rt time.Duration, cmd string, stderr io.Writer) {
	ctx, cancel := context.WithTimeout(context.Background(), min(rt, 10*time.Second)+time.Second)
	defer cancel()
	if err := c.Disconnect(ctx); err != nil && !errors.Is(err, mqttas.ErrNotConnected) {
		fmt.Fprintf(stderr, "mqttas %s: disconnect: %v\n", cmd, err)
	}
}

// addrOf is host:port for messages.
func addrOf(o *options) string {
	port := o.port
	if port == 0 {
		port = 1883
		if o.cafile != "" || o.cert != "" || o.insecure || o.osCerts {
			port = 8883
		}
	}
	if strings.Contains(o.host, ":") {
		return fmt.Sprintf("[%s]:%d", o.host, port)
	}
	return fmt.Sprintf("%s:%d", o.host, port)
}
