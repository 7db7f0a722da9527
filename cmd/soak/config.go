package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/mqttas/mqttas-go/harness/rig"
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

Runs N clients publishing qos 1 through a faulty link to a Mosquitto broker under a seeded random
fault schedule (or a replayed trace), then heals, waits for every client to reconnect, drains, and
checks with the delivery ledger that nothing acknowledged was lost. Writes summary.json,
history.jsonl and index.html (plus schedule.yaml and timeline.jsonl) to -out.

Environment (flags win): SOAK_DURATION, SOAK_CLIENTS, SOAK_RATE, SOAK_SEED, SOAK_CLIENT.

Exit codes: 0 pass, 1 loss/unexpected/a client did not recover, 2 usage or invalid trace,
3 harness error, 4 interrupted.

Flags:
`

// config is one soak run's settings.
type config struct {
	duration    time.Duration
	durationSet bool // by flag or environment; otherwise a trace sets its own
	clients     int
	rate        float64 // messages per second per client
	feedRate    float64 // messages per second from the feeder; 0 disables it
	feedSet     bool
	seed        int64
	seedSet     bool
	client      string
	trace       string
	record      string
	recordFrom  string
	out         string
	keepAlive   time.Duration
	response    time.Duration
	tail        time.Duration // quiet time after a trace's last fault
	drainQuiet  time.Duration
	healTimeout time.Duration
	drainMax    time.Duration
	stopGrace   time.Duration
	progress    time.Duration // progress line interval when stderr is not a terminal
	verbose     bool
}

// parseConfig reads the environment (through getenv), then the flags, which win.
func parseConfig(args []string, getenv func(string) string, stderr io.Writer, now time.Time) (config, error) {
	c := config{
		duration: 2 * time.Minute, clients: 20, rate: 5, client: "mqttas",
		keepAlive: 4 * time.Second, response: 3 * time.Second, tail: 10 * time.Second,
		drainQuiet: 3 * time.Second, healTimeout: 60 * time.Second, drainMax: 60 * time.Second,
		stopGrace: 30 * time.Second, progress: 5 * time.Second,
		seed: now.UnixNano(),
	}
	var errs []error
	env := func(name string, parse func(string) error) {
		if v := strings.TrimSpace(getenv(name)); v != "" {
			if err := parse(v); err != nil {
				errs = append(errs, fmt.Errorf("%s=%q: %v", name, v, err))
			}
		}
	}
	env("SOAK_DURATION", func(v string) (err error) {
		c.duration, err = time.ParseDuration(v)
		c.durationSet = err == nil
		return err
	})
	env("SOAK_CLIENTS", func(v string) (err error) { c.clients, err = strconv.Atoi(v); return err })
	env("SOAK_RATE", func(v string) (err error) { c.rate, err = strconv.ParseFloat(v, 64); return err })
	env("SOAK_SEED", func(v string) (err error) {
		c.seed, err = strconv.ParseInt(v, 10, 64)
		c.seedSet = err == nil
		return err
	})
	env("SOAK_CLIENT", func(v string) error { c.client = v; return nil })
	if err := errors.Join(errs...); err != nil {
		return c, err
	}

	fs := flag.NewFlagSet("soak", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usageText)
		fs.PrintDefaults()
	}
	fs.DurationVar(&c.duration, "duration", c.duration, "how long clients publish under faults (env SOAK_DURATION; with -trace: the trace's end + -tail)")
	fs.IntVar(&c.clients, "clients", c.clients, "clients through the faulty link, half of them Clean=false (env SOAK_CLIENTS)")
	fs.Float64Var(&c.rate, "rate", c.rate, "qos 1 messages per second per client (env SOAK_RATE)")
	fs.Float64Var(&c.feedRate, "feed-rate", c.rate, "messages per second from the feeder, a client straight to the broker whose messages queue up for Clean=false clients during outages; 0: no feeder; unset: the same as -rate")
	fs.Int64Var(&c.seed, "seed", c.seed, "seed of the random fault schedule (env SOAK_SEED; default: the time, printed)")
	fs.StringVar(&c.client, "client", c.client, "client under test: "+strings.Join(rig.Registry().Names(), "|")+" (env SOAK_CLIENT)")
	fs.StringVar(&c.trace, "trace", "", "replay this trace (YAML, see traces/README.md) instead of a random schedule")
	fs.StringVar(&c.record, "record", "", "write the outages the clients saw as a replayable trace to this file")
	fs.StringVar(&c.recordFrom, "record-from", "", "with -record: convert this timeline.jsonl (a field log) to a trace and exit, running nothing")
	fs.StringVar(&c.out, "out", "", "report directory (default reports/soak-<time>)")
	fs.DurationVar(&c.keepAlive, "keepalive", c.keepAlive, "the clients' MQTT keepalive")
	fs.DurationVar(&c.response, "response-timeout", c.response, "the clients' wait for an acknowledgement before they act")
	fs.DurationVar(&c.tail, "tail", c.tail, "with -trace: fault-free time after the trace's last fault")
	fs.DurationVar(&c.drainQuiet, "drain-quiet", c.drainQuiet, "the drain ends when nothing new arrived for this long")
	fs.DurationVar(&c.healTimeout, "heal-timeout", c.healTimeout, "bound on healing and on waiting for every client to reconnect")
	fs.DurationVar(&c.drainMax, "drain-timeout", c.drainMax, "bound on the drain")
	fs.DurationVar(&c.stopGrace, "stop-grace", c.stopGrace, "how long publications in flight may take to complete after the run")
	fs.DurationVar(&c.progress, "progress", c.progress, "progress line interval when stderr is not a terminal")
	fs.BoolVar(&c.verbose, "v", false, "log the harness's progress (fault injections, heals)")
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
		c.feedRate = c.rate
	}
	if c.out == "" {
		prefix := "soak"
		if c.trace != "" {
			prefix = "replay"
		}
		c.out = "reports/" + prefix + "-" + now.Format("20060102-150405")
	}
	return c, c.validate()
}

func (c config) validate() error {
	var errs []error
	check := func(ok bool, format string, args ...any) {
		if !ok {
			errs = append(errs, fmt.Errorf(format, args...))
		}
	}
	if c.recordFrom != "" {
		check(c.record != "", "-record-from needs -record (the trace to write)")
		return errors.Join(errs...)
	}
	check(c.duration > 0, "duration %v: must be > 0", c.duration)
	check(c.clients >= 1 && c.clients <= 1000, "clients %d: must be 1–1000", c.clients)
	check(c.rate > 0 && c.rate <= 1000, "rate %v: must be > 0 and ≤ 1000 messages/s per client", c.rate)
	check(c.feedRate >= 0 && c.feedRate <= 1000, "feed-rate %v: must be 0–1000 messages/s", c.feedRate)
	_, known := rig.Registry()[c.client]
	check(known, "client %q: want one of %s", c.client, strings.Join(rig.Registry().Names(), ", "))
	check(c.keepAlive >= time.Second && c.keepAlive%time.Second == 0, "keepalive %v: whole seconds ≥ 1s", c.keepAlive)
	check(c.response > 0, "response-timeout %v: must be > 0", c.response)
	check(c.tail >= 0 && c.drainQuiet > 0 && c.healTimeout > 0 && c.drainMax > 0 && c.stopGrace > 0 && c.progress > 0,
		"tail, drain-quiet, heal-timeout, drain-timeout, stop-grace and progress must be > 0")
	return errors.Join(errs...)
}

// settings are the run's parameters as the report records them.
func (c config) settings() map[string]any {
	return map[string]any{
		"duration": c.duration.String(), "clients": c.clients, "rate_per_client": c.rate, "feed_rate": c.feedRate,
		"client": c.client, "qos": 1, "keepalive": c.keepAlive.String(), "response_timeout": c.response.String(),
		"persistent_clients": (c.clients + 1) / 2, "trace": c.trace, "drain_quiet": c.drainQuiet.String(),
		"broker_config": strings.Join(brokerConfig(), "; "),
		"topology":      "client i publishes to soak/<tag>/c<i> and subscribes to its neighbour's topic and to the feed; the observer subscribes to everything",
	}
}
