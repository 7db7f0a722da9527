package soak

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mqttas/mqttas-go/harness/clients"
	"github.com/mqttas/mqttas-go/harness/faults"
	"github.com/mqttas/mqttas-go/harness/rig"
)

// Config is one soak run's settings. DefaultConfig gives the defaults of `make soak`.
type Config struct {
	// Duration is how long the clients publish under faults. With a Trace, 0 means the trace's last
	// fault's end plus Tail, and a Duration shorter than the trace is refused.
	Duration time.Duration
	// Messages, if > 0, ends the run once that many messages were published, before Duration if the
	// machine gets there first: a run of a given size whatever its speed. Duration still bounds it.
	Messages int64
	Clients  int     // clients through the faulty link, half of them with persistent sessions (1–1000)
	Rate     float64 // qos 1 messages per second per client
	// FeedRate is the feeder's rate: a client straight to the broker whose messages queue up for the
	// persistent clients during outages; 0: no feeder.
	FeedRate float64
	Seed     int64  // of the random fault schedule (without a Trace)
	Client   string // the client under test: a name in Registry
	// Registry makes the clients; nil means the rig's standard one (ClientNames).
	Registry clients.Registry
	Trace    string // a trace (YAML) to replay instead of a random schedule
	// Crash names the client faults (faults.CrashNames) the random schedule draws besides its default
	// faults, with their opt-in weights; they need a crash-capable Client (mqttas-durable, paho-durable).
	Crash  []string
	Record string // if set, the outages the clients saw are written here as a trace
	Out    string // the report directory
	// PlainHistory writes the report's history uncompressed (report.PlainHistoryFile).
	PlainHistory bool

	// Shard and Shards make the run shard Shard (0 … Shards-1) of a run split across processes or
	// machines: its client ids, topics and observer carry the run id and the shard, so the shards of one
	// run are disjoint and `soak merge` can join their reports. Shards 0 means an unsharded run.
	Shard, Shards int
	// RunID names the run in every client id and topic (letters, digits, '-', '_'; at most 32); the
	// shards of one run share it. "" means a tag drawn from the time, unique to this process.
	RunID string
	// BrokerAddr is an external broker's host:port: the harness starts none and fronts this one with its
	// faulty link, so several shards can share one broker. Faults on the broker itself (restart, kill,
	// pause) need the harness's own broker and are left out of the random schedule; a trace holding one
	// is refused.
	BrokerAddr string

	KeepAlive       time.Duration // the clients' MQTT keepalive (whole seconds)
	ResponseTimeout time.Duration // the clients' wait for an acknowledgement before they act
	Tail            time.Duration // with a Trace: fault-free time after its last fault
	DrainQuiet      time.Duration // the drain ends when nothing new arrived for this long
	HealTimeout     time.Duration // bound on healing and on waiting for every client to reconnect
	DrainTimeout    time.Duration // bound on the drain
	StopGrace       time.Duration // how long publications in flight may take after the run

	// Logger receives the harness's progress (fault injections, heals); nil discards it.
	Logger *slog.Logger
	// OnProgress, if set, receives a Progress snapshot every ProgressEvery while the clients publish and
	// heal, and a last one (Final) before the verdict. It runs on a goroutine of its own.
	OnProgress    func(Progress)
	ProgressEvery time.Duration
}

// DefaultConfig returns the defaults: 2 minutes, 20 mqttas clients at 5 msg/s, a feeder at the same rate,
// keepalive 4 s, and the report under reports/. The seed is left 0: pick one (and print it).
func DefaultConfig() Config {
	return Config{
		Duration: 2 * time.Minute, Clients: 20, Rate: 5, FeedRate: 5, Client: "mqttas",
		KeepAlive: 4 * time.Second, ResponseTimeout: 3 * time.Second, Tail: 10 * time.Second,
		DrainQuiet: 3 * time.Second, HealTimeout: 60 * time.Second, DrainTimeout: 60 * time.Second,
		StopGrace: 30 * time.Second, ProgressEvery: 5 * time.Second,
	}
}

// ClientNames lists the clients a soak can run, sorted.
func ClientNames() []string { return rig.Registry().Names() }

// Validate checks every setting; it returns all the problems at once.
func (c Config) Validate() error {
	var errs []error
	check := func(ok bool, format string, args ...any) {
		if !ok {
			errs = append(errs, fmt.Errorf(format, args...))
		}
	}
	check(c.Duration > 0 || (c.Duration == 0 && c.Trace != ""), "duration %v: must be > 0", c.Duration)
	check(c.Messages >= 0, "messages %d: must be ≥ 0 (0: no bound)", c.Messages)
	check(c.Clients >= 1 && c.Clients <= 1000, "clients %d: must be 1–1000", c.Clients)
	check(c.Rate > 0 && c.Rate <= 1000, "rate %v: must be > 0 and ≤ 1000 messages/s per client", c.Rate)
	check(c.FeedRate >= 0 && c.FeedRate <= 1000, "feed-rate %v: must be 0–1000 messages/s", c.FeedRate)
	names := ClientNames()
	if c.Registry != nil {
		names = c.Registry.Names()
	}
	check(slices.Contains(names, c.Client), "client %q: want one of %s", c.Client, strings.Join(names, ", "))
	check(c.KeepAlive >= time.Second && c.KeepAlive%time.Second == 0, "keepalive %v: whole seconds ≥ 1s", c.KeepAlive)
	check(c.ResponseTimeout > 0, "response-timeout %v: must be > 0", c.ResponseTimeout)
	check(c.Tail >= 0 && c.DrainQuiet > 0 && c.HealTimeout > 0 && c.DrainTimeout > 0 && c.StopGrace > 0 && c.ProgressEvery > 0,
		"tail, drain-quiet, heal-timeout, drain-timeout, stop-grace and progress must be > 0")
	check(c.Out != "", "no report directory")
	check(c.Shards >= 0 && c.Shards <= 1000 && (c.Shards == 0 && c.Shard == 0 || c.Shard >= 0 && c.Shard < c.Shards),
		"shard %d/%d: want i/N with 0 ≤ i < N ≤ 1000", c.Shard, c.Shards)
	check(c.Shards == 0 || c.RunID != "", "shard %d/%d needs a run id, the same for every shard of the run", c.Shard, c.Shards)
	check(c.RunID == "" || runIDPattern.MatchString(c.RunID), "run-id %q: letters, digits, '-' and '_', at most 32", c.RunID)
	if c.BrokerAddr != "" {
		host, port, err := net.SplitHostPort(c.BrokerAddr)
		check(err == nil && host != "" && port != "", "broker %q: want host:port", c.BrokerAddr)
	}
	for _, n := range c.Crash {
		check(slices.Contains(faults.CrashNames(), n), "crash %q: want client faults of %s", n, strings.Join(faults.CrashNames(), ", "))
	}
	check(len(c.Crash) == 0 || c.Trace == "", "crash: a trace has its own faults (put client faults in it)")
	return errors.Join(errs...)
}

var runIDPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,32}$`)

// ParseShard parses "i/N" (0 ≤ i < N), the form -shard takes.
func ParseShard(s string) (i, n int, err error) {
	a, b, ok := strings.Cut(s, "/")
	if ok {
		i, err = strconv.Atoi(a)
		if err == nil {
			n, err = strconv.Atoi(b)
		}
	}
	if !ok || err != nil || n < 1 || i < 0 || i >= n {
		return 0, 0, fmt.Errorf("shard %q: want i/N with 0 ≤ i < N, e.g. 0/4", s)
	}
	return i, n, nil
}

// brokerConfig is added to the harness's mosquitto.conf. Mosquitto 2.0 keeps at most 1000 messages for an
// offline persistent session by default and silently drops the rest; a long outage at a high rate would
// then show up as loss that the broker, not the client, caused. The soak tests the client: no limit.
func brokerConfig() []string { return []string{"max_queued_messages 0"} }

// BrokerConfig is what the soak adds to the harness's mosquitto.conf for its own broker, for a broker
// that shards share (`soak broker`, or one configured to match).
func BrokerConfig() []string { return brokerConfig() }

// Settings are the run's parameters as the report records them.
func (c Config) Settings() map[string]any {
	m := map[string]any{
		"duration": c.Duration.String(), "clients": c.Clients, "rate_per_client": c.Rate, "feed_rate": c.FeedRate,
		"client": c.Client, "qos": 1, "crash": strings.Join(c.Crash, ","), "keepalive": c.KeepAlive.String(), "response_timeout": c.ResponseTimeout.String(),
		"persistent_clients": (c.Clients + 1) / 2, "trace": c.Trace, "drain_quiet": c.DrainQuiet.String(),
		"broker_config": strings.Join(brokerConfig(), "; "),
		"topology":      "client i publishes to soak/<tag>/c<i> and subscribes to its neighbour's topic and to the feed; the observer subscribes to everything",
	}
	if c.BrokerAddr != "" {
		m["broker_config"] = "external broker " + c.BrokerAddr + ": its own configuration (set max_queued_messages 0, or a persistent client's backlog beyond it is dropped)"
	}
	return m
}
