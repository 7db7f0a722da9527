package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/mqttas/mqttas-go/harness/faults"
	"github.com/mqttas/mqttas-go/harness/proxy"
	"github.com/mqttas/mqttas-go/harness/schedule"
)

const proxySynopsis = `Usage: mqttas proxy [flags]

A fault proxy for real devices: point the device at --listen instead of its broker. The proxy forwards
to --broker (or starts the harness's own Mosquitto), applies the faults of --trace (or of a random
schedule drawn from --seed for --duration), and takes live faults through Toxiproxy's HTTP API on --api
(proxy "mqtt"; the MQTT-aware toxics mqtt_drop and mqtt_delay besides Toxiproxy's own). It records every
control packet to wire.jsonl, reads the sequence number of each payload the broker delivers (--pattern),
and at the end (the trace's end plus --tail, or SIGINT) writes index.html and summary.json to --out.
See docs/proxy.md.`

const proxyExitHelp = `
Exit codes: 0 the report is written and nothing was lost; 1 usage error (bad flag, malformed trace);
2 the proxy could not start (address in use or not allowed, broker unreachable); 4 the report is written
and a numbered message was lost; 5 the report could not be written or a fault failed to inject or heal.
`

const (
	exitCannotStart = 2
	exitLost        = 4
	exitHarness     = 5
)

type proxyFlags struct {
	listen, api, broker, trace, out, pattern, filter string
	public, quiet                                    bool
	repeat                                           int
	seed                                             int64
	duration, tail, progress                         time.Duration
}

func newProxyFlags() (*flag.FlagSet, *proxyFlags) {
	fs := flag.NewFlagSet("proxy", flag.ContinueOnError)
	f := &proxyFlags{}
	fs.StringVar(&f.listen, "listen", "127.0.0.1:1883", "`host:port` devices connect to (loopback unless --public)")
	fs.BoolVar(&f.public, "public", false, "allow --listen and --api on an address other than loopback (a device on the LAN)")
	fs.StringVar(&f.api, "api", "127.0.0.1:8474", "`host:port` of Toxiproxy's HTTP API; \"\" serves none")
	fs.StringVar(&f.broker, "broker", "", "external broker `host:port`; empty starts the harness's Mosquitto (container or process)")
	fs.StringVar(&f.trace, "trace", "", "fault trace to replay (`file`, e.g. traces/ap-reboot.yaml)")
	fs.IntVar(&f.repeat, "repeat", 1, "play the trace or random schedule `N` times in all")
	fs.Int64Var(&f.seed, "seed", 0, "draw a random fault schedule from this `seed` (needs --duration; not with --trace)")
	fs.DurationVar(&f.duration, "duration", 0, "length of the random schedule")
	fs.DurationVar(&f.tail, "tail", 10*time.Second, "keep serving this long after the schedule's end, for the device to recover")
	fs.StringVar(&f.out, "out", "", "report `directory` (default reports/proxy-<time>)")
	fs.StringVar(&f.pattern, "pattern", proxy.DefaultPattern, "`regexp` finding a payload's sequence number (its first group)")
	fs.StringVar(&f.filter, "filter", "#", "topic `filter` the observer subscribes to")
	fs.DurationVar(&f.progress, "progress", time.Second, "progress line interval")
	fs.BoolVar(&f.quiet, "quiet", false, "no progress line")
	return fs, f
}

func runProxy(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs, f := newProxyFlags()
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	err := fs.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		var b strings.Builder
		printUsage(&b, fs, proxySynopsis)
		// printUsage ends with pub and sub's exit codes; the proxy has its own.
		help, _, _ := strings.Cut(b.String(), exitCodesHelp)
		fmt.Fprint(stdout, help+proxyExitHelp)
		return exitOK
	case err != nil:
		return usage(stderr, "proxy", err)
	case fs.NArg() > 0:
		return usage(stderr, "proxy", usagef("unexpected argument %q", fs.Arg(0)))
	}
	cfg, err := f.config()
	if err != nil {
		return usage(stderr, "proxy", err)
	}
	cfg.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	cfg.OnReady = func(a proxy.Addrs) {
		fmt.Fprintf(stderr, "mqttas proxy: devices connect to %s, forwarded to %s", a.Listen, a.Broker)
		if a.API != "" {
			fmt.Fprintf(stderr, "; Toxiproxy API on http://%s (proxy %q)", a.API, "mqtt")
		}
		fmt.Fprintln(stderr)
	}
	if !f.quiet {
		cfg.OnProgress = func(p proxy.Progress) {
			active := "none"
			if len(p.Active) > 0 {
				active = strings.Join(p.Active, ", ")
			}
			end := "\r"
			if p.Final {
				end = "\n"
			}
			fmt.Fprintf(stderr, "\r%6.1fs  connections %d  packets %d  received %d  missing %d  faults: %s\x1b[K%s",
				p.Elapsed.Seconds(), p.Connections, p.Packets, p.Received, p.Lost, active, end)
		}
	}
	res, err := proxy.Run(ctx, cfg)
	switch {
	case errors.Is(err, proxy.ErrConfig):
		return usage(stderr, "proxy", err)
	case err != nil:
		fmt.Fprintf(stderr, "mqttas proxy: %v\n", err)
		return exitCannotStart
	}
	s := res.Summary
	fmt.Fprintf(stdout, "verdict %s: %d received, %d lost, %d duplicated, %d reordered, %d outages\n",
		s.Verdict, s.Delivered, s.Lost, s.Duplicates, s.Reordered, s.Outages)
	for _, t := range res.Topics {
		fmt.Fprintf(stdout, "  %s: #%d–#%d, %d received, %d lost, %d duplicates, %d reordered; wire: %d publishes, %d re-sends\n",
			t.Topic, t.First, t.Last, t.Received, t.Lost, t.Duplicates, t.Reordered, t.WirePublishes, t.WireResends)
		if t.Unnumbered > 0 {
			fmt.Fprintf(stdout, "    %d payloads without a sequence number (does --pattern match them?)\n", t.Unnumbered)
		}
	}
	fmt.Fprintf(stdout, "report: %s\n", filepath.Join(cfg.Out, "index.html"))
	for _, e := range res.Errors {
		fmt.Fprintf(stderr, "mqttas proxy: %s\n", e)
	}
	switch {
	case len(res.Errors) > 0:
		return exitHarness
	case s.Lost > 0 || s.Unexpected > 0:
		return exitLost
	}
	return exitOK
}

func (f *proxyFlags) config() (proxy.Config, error) {
	cfg := proxy.Config{Listen: f.listen, Public: f.public, API: f.api, Broker: f.broker, Repeat: f.repeat,
		Tail: f.tail, Out: f.out, Filter: f.filter, ProgressEvery: f.progress}
	if f.repeat < 1 {
		return cfg, usagef("--repeat %d: want 1 or more", f.repeat)
	}
	if f.progress <= 0 || f.tail < 0 {
		return cfg, usagef("--progress must be > 0 and --tail ≥ 0")
	}
	re, err := regexp.Compile(f.pattern)
	if err != nil {
		return cfg, usagef("--pattern: %v", err)
	}
	cfg.Pattern = re
	switch {
	case f.trace != "" && (f.seed != 0 || f.duration != 0):
		return cfg, usagef("--trace and --seed/--duration: choose a trace or a random schedule")
	case f.trace != "":
		s, err := schedule.Load(f.trace)
		if err != nil {
			return cfg, usagef("%v", err)
		}
		for _, e := range s.Faults {
			if e.Fault.Family() == faults.FamilyClient {
				return cfg, usagef("%s: %s: the proxy fronts real devices, whose processes it cannot crash (client faults are the soak's, for its crash-capable clients)", f.trace, e.Fault)
			}
		}
		cfg.Schedule = s
	case f.duration > 0:
		s, err := schedule.Random(f.seed, f.duration, schedule.RandomOptions{})
		if err != nil {
			return cfg, usagef("%v", err)
		}
		cfg.Schedule = s
	case f.seed != 0:
		return cfg, usagef("--seed needs --duration (the length of the random schedule)")
	}
	if cfg.Out == "" {
		cfg.Out = filepath.Join("reports", "proxy-"+time.Now().Format("20060102-150405"))
	}
	return cfg, nil
}
