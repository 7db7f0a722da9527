// Package crashclient is a client under test that the harness can crash and start again: a driver with a
// store on disk (procclient, protocol 2, the durable capability) in a child process. Crash kills the
// driver's process group with SIGKILL, as a crash of the device's process, or as a power cut (the next
// start undoes what the driver wrote and did not fsync); Restart starts a new driver on the same store
// directory, with the same client id and options, and connects it. In between the client is down and its
// publications fail as not sent. What the driver reported durable before a crash must arrive after the
// restart: the ledger holds it to that.
package crashclient

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/mqttas/mqttas-go/harness/clients"
	"github.com/mqttas/mqttas-go/harness/clients/procclient"
)

// The crash-capable clients' names in a clients.Registry.
const (
	NameMQTTAS = "mqttas-durable" // mqttas with a FileStore, publishing with PublishDurable
	NamePaho   = "paho-durable"   // paho.mqtt.golang with its FileStore
)

// DriverPath is where `make durable-driver` puts drivers/durable, relative to the repository root.
const DriverPath = "build/drivers/durable/driver"

// Errors of Crash and Restart, for errors.Is.
var (
	// ErrNoPowerCut: the driver cannot tell what an fsync covered (no power_cut capability).
	ErrNoPowerCut = errors.New("crashclient: the driver cannot take a power cut")
	// ErrNotCrashed: Restart of a client that is running.
	ErrNotCrashed = errors.New("crashclient: not crashed")
)

// Config is a crash-capable driver.
type Config struct {
	// Driver runs the driver; connect's settings get "store" and "after" added to its Settings.
	Driver procclient.Config
	// StoreRoot is where each client's store goes (<StoreRoot>/<client id>); "" means a temporary
	// directory per client, removed by Close.
	StoreRoot string
	// RestartTimeout bounds Restart's connection attempts; default 5 minutes.
	RestartTimeout time.Duration
}

// defaultRestartTimeout bounds a restart's attempts: longer than any outage of the shipped traces.
const defaultRestartTimeout = 5 * time.Minute

// Factory returns a clients.Factory of crash-capable clients.
func Factory(cfg Config) clients.Factory {
	return func(o clients.Options) (clients.Client, error) { return New(o, cfg) }
}

// Client is a crash-capable client.
type Client struct {
	cfg      Config
	opts     clients.Options
	store    string
	ownStore bool

	mu        sync.Mutex
	cur       *procclient.Client // nil while crashed
	starting  *procclient.Client // the driver Restart is connecting
	boot      context.CancelFunc // ends Restart's attempts; nil when none run
	bootDone  chan struct{}      // closed when they have ended
	started   bool               // the first Connect ran
	finished  bool               // Disconnect or Close
	after     string             // how the last driver ended, for the next start
	prev      clients.Stats      // the stats of the drivers before cur
	crashes   int64
	cuts      int64
	powerCuts bool // the driver has the power_cut capability
	hello     procclient.Hello
	closeErr  error
}

// New makes an unconnected client; Connect starts its first driver on an empty store.
func New(o clients.Options, cfg Config) (*Client, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	if len(cfg.Driver.Command) == 0 {
		return nil, fmt.Errorf("%w: crashclient needs a driver command", clients.ErrInvalidOptions)
	}
	if o.ClientID == "" {
		return nil, fmt.Errorf("%w: a crash-capable client needs a ClientID (it names its store and session)", clients.ErrInvalidOptions)
	}
	if cfg.RestartTimeout <= 0 {
		cfg.RestartTimeout = defaultRestartTimeout
	}
	c := &Client{cfg: cfg, opts: o, prev: clients.Stats{}}
	if cfg.StoreRoot == "" {
		dir, err := os.MkdirTemp("", "mqttas-crash-*")
		if err != nil {
			return nil, err
		}
		c.store, c.ownStore = filepath.Join(dir, "store"), true
	} else {
		if err := os.MkdirAll(cfg.StoreRoot, 0o700); err != nil {
			return nil, err
		}
		c.store = filepath.Join(cfg.StoreRoot, filepath.Base(filepath.Clean("/"+o.ClientID)))
	}
	return c, nil
}

// Store returns the client's store directory.
func (c *Client) Store() string { return c.store }

// driver makes the next driver, its connect settings saying how the last one ended.
func (c *Client) driver(after string) (*procclient.Client, error) {
	dc := c.cfg.Driver
	dc.Settings = maps.Clone(dc.Settings)
	if dc.Settings == nil {
		dc.Settings = map[string]any{}
	}
	dc.Settings["store"] = c.store
	dc.Settings["after"] = after
	return procclient.New(c.opts, dc)
}

// Connect starts the first driver and makes its first connection.
func (c *Client) Connect(ctx context.Context) error {
	c.mu.Lock()
	switch {
	case c.finished:
		c.mu.Unlock()
		return clients.ErrClosed
	case c.started:
		c.mu.Unlock()
		return errors.New("crashclient: Connect called twice")
	}
	c.started = true
	d, err := c.driver("")
	if err != nil {
		c.mu.Unlock()
		return err
	}
	c.cur = d
	c.mu.Unlock()
	if err := d.Connect(ctx); err != nil {
		return err
	}
	if !d.Hello().Has(procclient.CapDurable) {
		return fmt.Errorf("crashclient: driver %s does not declare the %s capability", c.cfg.Driver.Name, procclient.CapDurable)
	}
	c.mu.Lock()
	c.hello = d.Hello()
	c.powerCuts = c.hello.Has(procclient.CapPowerCut)
	c.mu.Unlock()
	return nil
}

// Hello returns what the first driver said about itself (zero before Connect).
func (c *Client) Hello() procclient.Hello {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.hello
}

// Crash kills the driver at once; see clients.Crasher. A client that is still connecting after a restart
// is crashed again in the middle of its boot; one that is down stays down.
func (c *Client) Crash(powerCut bool) error {
	c.mu.Lock()
	if c.finished || !c.started {
		c.mu.Unlock()
		return nil
	}
	if powerCut && !c.powerCuts {
		c.mu.Unlock()
		return fmt.Errorf("%w: driver %s", ErrNoPowerCut, c.cfg.Driver.Name)
	}
	c.mu.Unlock()
	c.stopBoot()
	c.mu.Lock()
	d := c.cur
	c.cur = nil
	c.crashes++
	switch {
	case powerCut:
		c.after = "power-cut"
		c.cuts++
	case c.after != "power-cut" || d != nil:
		c.after = "kill" // a kill during the boot after a power cut leaves the rollback to do
	}
	c.mu.Unlock()
	if d == nil {
		return nil
	}
	err := d.Kill()
	c.mu.Lock()
	for k, v := range d.Stats() {
		c.prev[k] += v
	}
	c.mu.Unlock()
	c.event(clients.EventDown, fmt.Errorf("process killed (%s)", c.how(powerCut)))
	return err
}

func (c *Client) how(powerCut bool) string {
	if powerCut {
		return "power cut"
	}
	return "SIGKILL"
}

// Restart starts a new driver on the store, as the device's process boots again, and returns: the client
// connects on its own meanwhile. A connection attempt that fails (the broker unreachable, the link down)
// is reported as a connect-failed event and made again by a new driver every 250 ms, until one connects,
// RestartTimeout passes or the client is crashed or closed again; until then the client is down.
func (c *Client) Restart(context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.finished:
		return clients.ErrClosed
	case c.cur != nil || c.boot != nil:
		return ErrNotCrashed
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.cfg.RestartTimeout)
	c.boot, c.bootDone = cancel, make(chan struct{})
	go c.booting(ctx, cancel, c.after, c.bootDone)
	return nil
}

// booting is Restart's connection attempts.
func (c *Client) booting(ctx context.Context, cancel context.CancelFunc, after string, done chan struct{}) {
	defer close(done)
	defer cancel()
	for {
		d, err := c.driver(after)
		if err != nil {
			c.event(clients.EventConnectFailed, err)
			return
		}
		c.mu.Lock()
		c.starting = d
		c.mu.Unlock()
		err = d.Connect(ctx)
		c.mu.Lock()
		c.starting = nil
		if err == nil && ctx.Err() == nil {
			c.cur, c.boot = d, nil
			c.mu.Unlock()
			return
		}
		c.mu.Unlock()
		_ = d.Close()
		if ctx.Err() != nil {
			c.mu.Lock()
			c.boot = nil
			c.mu.Unlock()
			return // crashed or closed again, or out of time: the client stays down
		}
		c.event(clients.EventConnectFailed, fmt.Errorf("restart: %w", err))
		select {
		case <-ctx.Done():
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func (c *Client) event(k clients.EventKind, err error) {
	if c.opts.OnEvent != nil {
		c.opts.OnEvent(clients.Event{Kind: k, At: time.Now(), Err: err})
	}
}

// stopBoot ends Restart's attempts, if they run, and waits for them.
func (c *Client) stopBoot() {
	c.mu.Lock()
	cancel, done, d := c.boot, c.bootDone, c.starting
	c.mu.Unlock()
	if cancel == nil {
		return
	}
	cancel()
	if d != nil {
		_ = d.Kill() // a crash in the middle of the boot
	}
	<-done
}

func (c *Client) current() *procclient.Client {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cur
}

// errDown is the cause of calls made while the client is crashed.
var errDown = errors.New("crashclient: the client's process is down (crashed, not restarted yet)")

// Publish publishes through the running driver; while crashed it fails as not sent.
func (c *Client) Publish(ctx context.Context, m clients.Message) error {
	d := c.current()
	if d == nil {
		return fmt.Errorf("%w: %w", clients.ErrNotSent, errDown)
	}
	return d.Publish(ctx, m)
}

// Subscribe subscribes through the running driver.
func (c *Client) Subscribe(ctx context.Context, filter string, qos byte) error {
	d := c.current()
	if d == nil {
		return errDown
	}
	return d.Subscribe(ctx, filter, qos)
}

// Unsubscribe unsubscribes through the running driver.
func (c *Client) Unsubscribe(ctx context.Context, filter string) error {
	d := c.current()
	if d == nil {
		return errDown
	}
	return d.Unsubscribe(ctx, filter)
}

// Disconnect ends the session gracefully; the client is not restarted after it.
func (c *Client) Disconnect(ctx context.Context) error {
	c.stopBoot()
	c.mu.Lock()
	if c.finished {
		c.mu.Unlock()
		return clients.ErrClosed
	}
	c.finished = true
	d := c.cur
	c.mu.Unlock()
	if d == nil {
		return nil
	}
	return d.Disconnect(ctx)
}

// Close closes the running driver (without DISCONNECT) and removes a temporary store.
func (c *Client) Close() error {
	c.stopBoot()
	c.mu.Lock()
	if c.finished && c.cur == nil {
		defer c.mu.Unlock()
		return c.closeErr
	}
	c.finished = true
	d := c.cur
	c.cur = nil
	c.mu.Unlock()
	var err error
	if d != nil {
		err = d.Close()
	}
	if c.ownStore {
		err = errors.Join(err, os.RemoveAll(filepath.Dir(c.store)))
	}
	c.mu.Lock()
	c.closeErr = err
	c.mu.Unlock()
	return err
}

// IsConnected reports whether a driver runs and says it is connected.
func (c *Client) IsConnected() bool {
	d := c.current()
	return d != nil && d.IsConnected()
}

// Stats adds up the counters of every driver so far, and counts the crashes ("crashes", "power_cuts").
func (c *Client) Stats() clients.Stats {
	c.mu.Lock()
	s := maps.Clone(c.prev)
	d := c.cur
	s["crashes"], s["power_cuts"] = c.crashes, c.cuts
	c.mu.Unlock()
	if d != nil {
		for k, v := range d.Stats() {
			s[k] += v
		}
	}
	if n := s[clients.StatConnects]; n > 0 {
		s[clients.StatReconnects] = n - 1
	}
	return s
}

// Configs returns the two crash-capable drivers for the repository at root, by name.
func Configs(root string) map[string]Config {
	bin := filepath.Join(root, DriverPath)
	return map[string]Config{
		NameMQTTAS: {Driver: procclient.Config{Name: NameMQTTAS, Command: []string{bin, "-library", "mqttas"}}},
		NamePaho:   {Driver: procclient.Config{Name: NamePaho, Command: []string{bin, "-library", "paho"}}},
	}
}

// Registry returns the crash-capable clients for the repository at root; their factories refuse to make
// a client when the driver is not built, and say how to build it.
func Registry(root string) clients.Registry {
	reg := clients.Registry{}
	for name, cfg := range Configs(root) {
		bin := cfg.Driver.Command[0]
		reg[name] = func(o clients.Options) (clients.Client, error) {
			if fi, err := os.Stat(bin); err != nil || !fi.Mode().IsRegular() {
				return nil, fmt.Errorf("crashclient: the durable driver %s is not built: run `make durable-driver`", bin)
			}
			return New(o, cfg)
		}
	}
	return reg
}

// DefaultRegistry is Registry for the repository root above the working directory; without one the
// names are registered and their factories return the error.
func DefaultRegistry() clients.Registry {
	root, err := procclient.FindRoot(".")
	if err == nil {
		return Registry(root)
	}
	reg := clients.Registry{}
	for _, name := range []string{NameMQTTAS, NamePaho} {
		reg[name] = func(clients.Options) (clients.Client, error) { return nil, fmt.Errorf("client %s: %w", name, err) }
	}
	return reg
}

var _ clients.Crasher = (*Client)(nil)
