// Command mqttas publishes and subscribes like mosquitto_pub and mosquitto_sub, but rides through network
// and broker outages instead of giving up at the first dropout, and reports on stderr what happened.
//
//	mqttas pub -h broker -t sensors/7 -q 1 --count 100 --interval 1s -m reading
//	mqttas sub -h broker -t 'sensors/#' -q 1 -c -i logger -v
//
// mqttas proxy is a fault proxy for real devices (docs/proxy.md); "mqttas proxy --help" gives its flags
// and its own exit codes. The exit codes below are pub's and sub's.
//
// Exit codes: 0 done, 1 usage error, 2 the first connection (or subscription) was refused or failed,
// 3 interrupted (SIGINT or SIGTERM) before the planned work was done. sub without -C has no planned end: a
// signal stops it with 0, as it does mosquitto_sub. Run "mqttas pub --help" for the flags.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, cancel := context.WithCancel(context.Background())
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sigs
		cancel() // the first signal: finish the publication in flight, then disconnect cleanly
		<-sigs
		fmt.Fprintln(os.Stderr, "mqttas: interrupted again: abandoning the work in flight")
		os.Exit(exitInterrupted)
	}()
	os.Exit(run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
