package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/mqttas/mqttas-go/harness/broker"
	"github.com/mqttas/mqttas-go/harness/soak"
)

// brokerCmd starts the broker a soak starts (the harness's Mosquitto, with the soak's configuration)
// for shards to share with -broker: it prints its address (and writes it to -addr-file), and runs
// until ctx ends (SIGINT, SIGTERM) or -for has passed, then removes it.
func brokerCmd(ctx context.Context, args []string, stdout io.Writer, con *console) int {
	fs := flag.NewFlagSet("soak broker", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	addrFile := fs.String("addr-file", "", "also write the broker's host:port to this file (written once the broker answers)")
	limit := fs.Duration("for", 0, "stop this long after the broker answers (0: until SIGINT or SIGTERM)")
	if err := fs.Parse(args); err != nil || fs.NArg() > 0 || *limit < 0 {
		con.Printf("soak: usage: soak broker [-addr-file path] [-for duration]")
		return exitUsage
	}
	b, err := broker.New(ctx, broker.Options{Config: soak.BrokerConfig()})
	if err != nil {
		con.Printf("soak: broker: %v", err)
		return exitHarness
	}
	code := exitPass
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		if err := b.Close(cctx); err != nil {
			con.Printf("soak: broker: removing it: %v", err)
			code = exitHarness
		}
	}()
	if *addrFile != "" {
		tmp := *addrFile + ".tmp"
		if err := os.WriteFile(tmp, []byte(b.Addr()+"\n"), 0o644); err != nil {
			con.Printf("soak: broker: %v", err)
			return exitHarness
		}
		if err := os.Rename(tmp, *addrFile); err != nil { // whole, or not at all, for whoever waits on it
			con.Printf("soak: broker: %v", err)
			return exitHarness
		}
		defer os.Remove(*addrFile)
	}
	if *limit > 0 { // from the moment it answers
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *limit)
		defer cancel()
	}
	fmt.Fprintln(stdout, b.Addr())
	con.Printf("soak: broker (%s, %s) at %s until interrupted", b.Kind(), soakConfigText(), b.Addr())
	<-ctx.Done()
	return code
}

func soakConfigText() string {
	cfg := soak.BrokerConfig()
	if len(cfg) == 0 {
		return "default configuration"
	}
	return fmt.Sprint(cfg)
}
