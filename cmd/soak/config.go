package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/mqttas/mqttas-go/harness/faults"
	"github.com/mqttas/mqttas-go/harness/soak"
)

// Exit codes.
const (
	exitPass        = 0 // every acknowledged message delivered, every client back
	exitFail        = 1 // something lost or unexpected, a client did not recover, or nothing proven
	exitUsage       = 2 // bad flags, environment or trace: nothing was started
	exitHarness     = 3 // the harness failed (broker, link, a fault that would not inject or heal, report)
	exitInterrupted = 4 // SIGINT/SIGTERM cut the run short (the report is still written)
)

const usageText = `usage: soak [flags]
       soak -shard i/N -run-id <id> [-broker host:port] [flags]
       soak check [-online] <history.jsonl.gz | history.jsonl>
       soak merge [-out dir] <shard report dir or pattern>...
       soak render-k8s -o <dir> [-base dir] [-external-broker host,...] [-workflow] <trace.yaml>

Runs N clients publishing qos 1 through a faulty link to a Mosquitto broker under a seeded random
fault schedule (or a replayed trace), then heals, waits for every client to reconnect, drains, and
checks with the delivery ledger that nothing acknowledged was lost. Writes summary.json,
history.jsonl.gz (gzip; history.jsonl with -plain-history) and index.html (plus schedule.yaml
and timeline.jsonl) to -out.

soak check reads a saved history (a report's, or any the ledger wrote, compressed or not), checks
it again and prints the verdict, running nothing; with -online it checks line by line in memory
bounded by what was in flight, not by the length of the run (latency quantiles within 1%).

With -shard i/N and -run-id the run is shard i of a run split across processes or machines: its
client ids and topics carry the run id and the shard (soak-<id>-s<i>-c042, soak/<id>/s<i>/c042),
its summary states its start and its clock; -broker host:port soaks through an external broker
(which the shards share) instead of starting one.

soak broker starts the broker a soak starts (max_queued_messages 0) for shards to share with
-broker: it prints its address and runs until interrupted (make fleet runs one).

soak figures writes the scale figures of soak reports as JSON (messages, verdict, peak RSS,
history bytes a message), from their summary.json and history.

soak merge joins the reports of the disjoint shards of one run into one verdict and one report
(times lined up by each shard's start; the shards' clocks are taken to agree), reading the shards'
histories side by side and judging them online as it writes the merged one, in memory bounded by
what is in flight, not by the messages (latency quantiles within 1%).

soak render-k8s writes a trace as a Kustomize overlay for a fleet run (deploy/): Chaos Mesh
NetworkChaos and Schedule objects (or with -workflow one Workflow, which keeps the trace's times) for
the faults Chaos Mesh can make, and the rest as a trace the soak in each shard pod makes through its
own link (see deploy/README.md).

Environment (flags win): SOAK_DURATION, SOAK_CLIENTS, SOAK_RATE, SOAK_SEED, SOAK_CLIENT, SOAK_CRASH.

Exit codes: 0 pass, 1 loss/unexpected/a client did not recover, 2 usage or invalid trace,
3 harness error, 4 interrupted.

Flags:
`

// crashList reads -crash: "1", "true" or "all" is every client fault, "0" or "false" none, else a list.
func crashList(v string) []string {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "1", "true", "all":
		return faults.CrashNames()
	case "", "0", "false":
		return nil
	}
	var out []string
	for n := range strings.SplitSeq(v, ",") {
		if n = strings.TrimSpace(n); n != "" {
			out = append(out, n)
		}
	}
	return out
}

// config is the command's settings: a soak run's, and what only the command knows.
type config struct {
	soak.Config
	durationSet bool // by flag or environment; otherwise a trace sets its own
	feedSet     bool
	seedSet     bool
	recordFrom  string
	verbose     bool
	heapEvery   time.Duration // write a heap profile into the report this often (0: none)
}

// parseConfig reads the environment (through getenv), then the flags, which win.
func parseConfig(args []string, getenv func(string) string, stderr io.Writer, now time.Time) (config, error) {
	c := config{Config: soak.DefaultConfig()}
	c.Seed = now.UnixNano()
	var errs []error
	env := func(name string, parse func(string) error) {
		if v := strings.TrimSpace(getenv(name)); v != "" {
			if err := parse(v); err != nil {
				errs = append(errs, fmt.Errorf("%s=%q: %v", name, v, err))
			}
		}
	}
	env("SOAK_DURATION", func(v string) (err error) {
		c.Duration, err = time.ParseDuration(v)
		c.durationSet = err == nil
		return err
	})
	env("SOAK_CLIENTS", func(v string) (err error) { c.Clients, err = strconv.Atoi(v); return err })
	env("SOAK_RATE", func(v string) (err error) { c.Rate, err = strconv.ParseFloat(v, 64); return err })
	env("SOAK_SEED", func(v string) (err error) {
		c.Seed, err = strconv.ParseInt(v, 10, 64)
		c.seedSet = err == nil
		return err
	})
	env("SOAK_CLIENT", func(v string) error { c.Client = v; return nil })
	env("SOAK_CRASH", func(v string) error { c.Crash = crashList(v); return nil })
	if err := errors.Join(errs...); err != nil {
		return c, err
	}

	fs := flag.NewFlagSet("soak", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usageText)
		fs.PrintDefaults()
	}
	fs.DurationVar(&c.Duration, "duration", c.Duration, "how long clients publish under faults (env SOAK_DURATION; with -trace: the trace's end + -tail)")
	fs.Int64Var(&c.Messages, "messages", 0, "end the run once this many messages were published (the duration still bounds it; 0: no bound)")
	fs.IntVar(&c.Clients, "clients", c.Clients, "clients through the faulty link, half of them Clean=false (env SOAK_CLIENTS)")
	fs.Float64Var(&c.Rate, "rate", c.Rate, "qos 1 messages per second per client (env SOAK_RATE)")
	fs.Float64Var(&c.FeedRate, "feed-rate", c.Rate, "messages per second from the feeder, a client straight to the broker whose messages queue up for Clean=false clients during outages; 0: no feeder; unset: the same as -rate")
	fs.Int64Var(&c.Seed, "seed", c.Seed, "seed of the random fault schedule (env SOAK_SEED; default: the time, printed)")
	fs.StringVar(&c.Client, "client", c.Client, "client under test: "+strings.Join(soak.ClientNames(), "|")+" (env SOAK_CLIENT)")
	fs.Func("crash", "add client faults to the random schedule: 1 or all (every one: "+strings.Join(faults.CrashNames(), ", ")+
		"), or a comma-separated list; they need -client mqttas-durable or paho-durable (env SOAK_CRASH)",
		func(v string) error { c.Crash = crashList(v); return nil })
	fs.StringVar(&c.Trace, "trace", "", "replay this trace (YAML, see traces/README.md) instead of a random schedule")
	fs.StringVar(&c.Record, "record", "", "write the outages the clients saw as a replayable trace to this file")
	fs.StringVar(&c.recordFrom, "record-from", "", "with -record: convert this timeline.jsonl (a field log) to a trace and exit, running nothing")
	fs.StringVar(&c.Out, "out", "", "report directory (default reports/soak-<time>)")
	fs.BoolVar(&c.PlainHistory, "plain-history", false, "write the history uncompressed (history.jsonl, several times larger) instead of history.jsonl.gz")
	fs.DurationVar(&c.KeepAlive, "keepalive", c.KeepAlive, "the clients' MQTT keepalive")
	fs.DurationVar(&c.ResponseTimeout, "response-timeout", c.ResponseTimeout, "the clients' wait for an acknowledgement before they act")
	fs.DurationVar(&c.Tail, "tail", c.Tail, "with -trace: fault-free time after the trace's last fault")
	fs.DurationVar(&c.DrainQuiet, "drain-quiet", c.DrainQuiet, "the drain ends when nothing new arrived for this long")
	fs.DurationVar(&c.HealTimeout, "heal-timeout", c.HealTimeout, "bound on healing and on waiting for every client to reconnect")
	fs.DurationVar(&c.DrainTimeout, "drain-timeout", c.DrainTimeout, "bound on the drain")
	fs.DurationVar(&c.StopGrace, "stop-grace", c.StopGrace, "how long publications in flight may take to complete after the run")
	fs.DurationVar(&c.ProgressEvery, "progress", c.ProgressEvery, "progress line interval when stderr is not a terminal")
	fs.Func("shard", "run as shard i of N (0 ≤ i < N, e.g. 0/4): client ids and topics carry -run-id and the shard, so the shards of one run are disjoint; `soak merge` joins their reports", func(v string) (err error) {
		c.Shard, c.Shards, err = soak.ParseShard(v)
		return err
	})
	fs.StringVar(&c.RunID, "run-id", "", "the run's name in every client id and topic (letters, digits, - and _; the same for every shard of a run; default: drawn from the time)")
	fs.StringVar(&c.BrokerAddr, "broker", "", "host:port of an external broker to soak through the faulty link instead of starting one (shards share it; faults on the broker itself are left out)")
	fs.BoolVar(&c.verbose, "v", false, "log the harness's progress (fault injections, heals)")
	fs.DurationVar(&c.heapEvery, "heap-profile-every", 0, "write the soak's heap profile into the report directory this often and at the end (heap-<minutes>m<seconds>s.pprof; compare with go tool pprof -base); 0: none")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "duration":
			c.durationSet = true
		case "seed":
			c.seedSet = true
		case "feed-rate":
			c.feedSet = true
		}
	})
	if !c.feedSet {
		c.FeedRate = c.Rate
	}
	if c.Out == "" {
		prefix := "soak"
		if c.Trace != "" {
			prefix = "replay"
		}
		c.Out = "reports/" + prefix + "-" + now.Format("20060102-150405")
		if c.Shards > 0 {
			c.Out = fmt.Sprintf("reports/%s-%s-shard%d", prefix, c.RunID, c.Shard)
		}
	}
	return c, c.validate()
}

func (c config) validate() error {
	if c.heapEvery < 0 || c.heapEvery > 0 && c.heapEvery < time.Second {
		return fmt.Errorf("-heap-profile-every %v: want 0 (none) or at least 1s", c.heapEvery)
	}
	if c.recordFrom != "" {
		if c.Record == "" {
			return errors.New("-record-from needs -record (the trace to write)")
		}
		return nil
	}
	return c.Config.Validate()
}

// soakConfig is the run's configuration: with a trace and no duration given, the trace sets it.
func (c config) soakConfig() soak.Config {
	sc := c.Config
	if sc.Trace != "" && !c.durationSet {
		sc.Duration = 0
	}
	return sc
}
