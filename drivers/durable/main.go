// Command durable is the harness's driver for durable qos 1 publication, protocol 2: a Go MQTT library with
// a store on disk in a child process, so the harness can kill it (SIGKILL) at any moment, cut its power
// (dropping what it wrote and did not fsync), and start it again on the same store. It reads commands from
// stdin and writes events to stdout, one JSON object per line, as harness/clients/procclient/PROTOCOL.md
// describes; `make durable-driver` builds it into build/drivers/durable/driver.
//
// -library picks the library:
//   - mqttas: mqttas with a FileStore (mqttas.OpenFileStoreFS over internal/powercut's journaling file
//     system), publishing with PublishDurable. Its answer to a qos 1 publish comes when PublishDurable
//     returns (the message written and fsynced), with durable: true. Reconnection backoff 50–500 ms, as the
//     harness's in-process mqttas adapter.
//   - paho: paho.mqtt.golang with its FileStore, as its documentation has it for reliable qos 1: a stable
//     client id, CleanSession false (from the options), SetStore(NewFileStore(dir)), AutoReconnect,
//     ResumeSubs and OrderMatters, MaxReconnectInterval 1 s (as the in-process paho adapter). paho reports
//     nothing durable; the closest is Publish's return, by which paho has put the message in its store
//     (persistOutbound runs inside Publish), so the driver answers then, with durable: true. paho's
//     FileStore never calls fsync (filestore.go: create, write, close, rename), so it does not declare
//     the power_cut capability: the harness cuts power only where it can tell what an fsync covered. With a
//     clean session (the options' CleanSession, which the driver passes on) paho empties its store at every
//     connection (client.go: persist.Reset when CleanSession), so what it stored before a kill is not sent
//     after the restart; only CleanSession false, its documented setting for reliable qos 1, keeps it.
//
// connect's settings: "store" (required), the store's directory, which the driver creates; and "after",
// how the last run on that store ended: "kill" or "" keeps what it wrote, "power-cut" first undoes its
// writes that no fsync covered (powercut.Rollback of the journal beside the store). qos 0 publishes are
// plain Publish calls, answered when the library returns.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/url"
	"os"
	"runtime/debug"
	"strconv"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/mqttas/mqttas-go/internal/connack"
	"github.com/mqttas/mqttas-go/internal/powercut"
	"github.com/mqttas/mqttas-go/mqttas"
)

const protocol = 2

// maxLine bounds a command line, as the harness bounds event lines.
const maxLine = 8 << 20

type command struct {
	ID       uint64          `json:"id"`
	Cmd      string          `json:"cmd"`
	Protocol int             `json:"protocol"`
	Options  *options        `json:"options"`
	Settings json.RawMessage `json:"settings"`
	Topic    string          `json:"topic"`
	Filter   string          `json:"filter"`
	Payload  []byte          `json:"payload"`
	QoS      byte            `json:"qos"`
	Retain   bool            `json:"retain"`
}

type options struct {
	Host              string `json:"host"`
	Port              int    `json:"port"`
	ClientID          string `json:"client_id"`
	CleanSession      bool   `json:"clean_session"`
	KeepAliveMS       int64  `json:"keepalive_ms"`
	PingTimeoutMS     int64  `json:"ping_timeout_ms"`
	ResponseTimeoutMS int64  `json:"response_timeout_ms"`
	ConnectTimeoutMS  int64  `json:"connect_timeout_ms"`
	Will              *struct {
		Topic   string `json:"topic"`
		Payload []byte `json:"payload"`
		QoS     byte   `json:"qos"`
		Retain  bool   `json:"retain"`
	} `json:"will"`
}

type settings struct {
	Store string `json:"store"`
	After string `json:"after"`
}

// lib is one library behind the driver.
type lib interface {
	connect(ctx context.Context, o *options, s settings) error
	// publish returns when the library is done with m as the driver answers it, and whether that is durable.
	publish(ctx context.Context, c *command) (durable bool, err error)
	subscribe(ctx context.Context, filter string, qos byte) error
	unsubscribe(ctx context.Context, filter string) error
	disconnect(ctx context.Context) error
	close()
}

// driver writes events one line at a time: a message event is on the pipe before the library acknowledges
// the message (both libraries acknowledge after the handler returns), so a kill after the PUBACK loses no
// delivery the harness was owed.
type driver struct {
	mu  sync.Mutex
	out io.Writer
	lib lib
}

func (d *driver) emit(ev map[string]any) {
	b, err := json.Marshal(ev)
	if err != nil {
		panic(err) // only maps of plain values
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, err := d.out.Write(append(b, '\n')); err != nil {
		os.Exit(3) // the harness is gone
	}
}

func (d *driver) result(id uint64, err error, extra map[string]any) {
	ev := map[string]any{"ev": "result", "id": id, "ok": err == nil}
	if err != nil {
		ev["error"] = err.Error()
		if errors.Is(err, errNotSent) {
			ev["not_sent"] = true
		}
	}
	for k, v := range extra {
		ev[k] = v
	}
	d.emit(ev)
}

func (d *driver) message(topic string, payload []byte, qos byte, retain, dup bool) {
	d.emit(map[string]any{"ev": "message", "topic": topic, "payload": payload, "qos": qos, "retain": retain, "dup": dup})
}

func (d *driver) up(sessionPresent bool) {
	d.emit(map[string]any{"ev": "up", "session_present": sessionPresent})
}

func (d *driver) down(reason string) { d.emit(map[string]any{"ev": "down", "reason": reason}) }

func (d *driver) log(level, msg string) {
	d.emit(map[string]any{"ev": "log", "level": level, "msg": msg})
}

var errNotSent = errors.New("not sent")

func main() {
	library := flag.String("library", "mqttas", "the library: mqttas or paho")
	flag.Parse()
	d := &driver{out: os.Stdout}
	var name, version string
	var caps []string
	switch *library {
	case "mqttas":
		d.lib = &mqttasLib{d: d}
		name, version, caps = "mqttas", moduleVersion("github.com/mqttas/mqttas-go/mqttas"), []string{"session_present", "durable", "power_cut"}
	case "paho":
		d.lib = &pahoLib{d: d}
		name, version, caps = "paho.mqtt.golang", moduleVersion("github.com/eclipse/paho.mqtt.golang"), []string{"dup", "durable"}
	default:
		fmt.Fprintf(os.Stderr, "durable: -library %q: want mqttas or paho\n", *library)
		os.Exit(2)
	}
	if err := d.run(os.Stdin, name, version, caps); err != nil {
		fmt.Fprintln(os.Stderr, "durable:", err)
		os.Exit(1)
	}
}

func moduleVersion(path string) string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, m := range bi.Deps {
			if m.Path == path {
				if m.Replace != nil {
					return m.Version + " (" + m.Replace.Path + ")"
				}
				return m.Version
			}
		}
	}
	return "(devel)"
}

// run serves commands until close or the end of stdin, then exits without DISCONNECT.
func (d *driver) run(in io.Reader, name, version string, caps []string) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 0, 64<<10), maxLine+1)
	var wg sync.WaitGroup
	for sc.Scan() {
		var c command
		if err := json.Unmarshal(sc.Bytes(), &c); err != nil {
			return fmt.Errorf("bad command line: %w", err)
		}
		switch c.Cmd {
		case "hello":
			d.result(c.ID, nil, map[string]any{"hello": map[string]any{"protocol": protocol, "driver": "go-durable",
				"library": name, "version": version, "capabilities": caps}})
		case "ping":
			d.result(c.ID, nil, nil)
		case "close":
			d.result(c.ID, nil, nil)
			d.lib.close()
			return nil
		case "connect":
			var s settings
			if len(c.Settings) > 0 {
				if err := json.Unmarshal(c.Settings, &s); err != nil {
					d.result(c.ID, fmt.Errorf("settings: %w", err), nil)
					continue
				}
			}
			wg.Go(func() { d.result(c.ID, d.lib.connect(ctx, c.Options, s), nil) })
		case "publish":
			wg.Go(func() {
				durable, err := d.lib.publish(ctx, &c)
				var extra map[string]any
				if err == nil && durable {
					extra = map[string]any{"durable": true}
				}
				d.result(c.ID, err, extra)
			})
		case "subscribe":
			wg.Go(func() { d.result(c.ID, d.lib.subscribe(ctx, c.Filter, c.QoS), nil) })
		case "unsubscribe":
			wg.Go(func() { d.result(c.ID, d.lib.unsubscribe(ctx, c.Filter), nil) })
		case "disconnect":
			wg.Go(func() { d.result(c.ID, d.lib.disconnect(ctx), nil) })
		default:
			d.result(c.ID, fmt.Errorf("unknown command %q", c.Cmd), nil)
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	d.lib.close() // end of stdin means close
	return nil
}

// openStore prepares the store's directory for this run: after a power cut, the writes of the last run
// that no fsync covered are undone first.
func openStore(d *driver, s settings) error {
	if s.Store == "" {
		return errors.New(`connect: settings need "store", the store's directory`)
	}
	switch s.After {
	case "power-cut":
		u, err := powercut.Rollback(s.Store)
		if err != nil {
			return err
		}
		d.log("info", fmt.Sprintf("power cut: undid %d writes no fsync covered (%d bytes cut)", u.Writes, u.Bytes))
	case "", "kill":
		if err := powercut.Discard(s.Store); err != nil {
			return err
		}
	default:
		return fmt.Errorf(`connect: settings: "after" %q: want "", "kill" or "power-cut"`, s.After)
	}
	return nil
}

type mqttasLib struct {
	d     *driver
	mu    sync.Mutex // guards c: connect sets it while other commands may arrive
	c     *mqttas.Client
	store *mqttas.FileStore
	fs    *powercut.FS
}

func (l *mqttasLib) client() *mqttas.Client {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.c
}

func (l *mqttasLib) connect(ctx context.Context, o *options, s settings) error {
	if o == nil {
		return errors.New("connect without options")
	}
	if err := openStore(l.d, s); err != nil {
		return err
	}
	var err error
	if l.fs, err = powercut.Open(s.Store); err != nil {
		return err
	}
	l.store, err = mqttas.OpenFileStoreFS(l.fs, s.Store)
	var rerr *mqttas.RecoveryError
	switch {
	case errors.As(err, &rerr):
		l.d.log("warn", rerr.Error())
	case err != nil:
		return err
	}
	mc := mqttas.Config{Server: o.Host, Port: o.Port, ClientID: o.ClientID, KeepSession: !o.CleanSession,
		ResumeSession: !o.CleanSession, Store: l.store, ReconnectMin: 50 * time.Millisecond, ReconnectMax: 500 * time.Millisecond,
		Logger: slog.New(slog.DiscardHandler)}
	if o.KeepAliveMS > 0 {
		mc.KeepAlive = time.Duration(math.Ceil(float64(o.KeepAliveMS)/1000)) * time.Second
	}
	if o.ResponseTimeoutMS > 0 {
		mc.ResponseTime = time.Duration(o.ResponseTimeoutMS) * time.Millisecond
	}
	if w := o.Will; w != nil {
		mc.Will = &mqttas.Message{Topic: w.Topic, Payload: w.Payload, QoS: w.QoS, Retain: w.Retain}
	}
	mc.OnMessage = func(m mqttas.Message) { l.d.message(m.Topic, m.Payload, m.QoS, m.Retain, false) }
	mc.OnLinkChange = func(up bool) {
		if up {
			l.d.up(l.client().Stats().SessionPresent)
		} else {
			l.d.down("connection lost")
		}
	}
	c, err := mqttas.New(mc)
	if err != nil {
		return err
	}
	l.mu.Lock()
	l.c = c
	l.mu.Unlock()
	if o.ConnectTimeoutMS > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(o.ConnectTimeoutMS)*time.Millisecond)
		defer cancel()
	}
	return c.Connect(ctx)
}

func (l *mqttasLib) publish(ctx context.Context, c *command) (bool, error) {
	mc := l.client()
	if mc == nil {
		return false, fmt.Errorf("%w: not connected", errNotSent)
	}
	if c.QoS == 1 {
		err := mc.PublishDurable(ctx, c.Topic, c.Payload, c.Retain)
		if err != nil && !errors.Is(err, mqttas.ErrStoreFailed) && !errors.Is(err, mqttas.ErrClosed) {
			err = fmt.Errorf("%w: %w", errNotSent, err) // refused before it was stored: never sent
		}
		return err == nil, err
	}
	return false, mc.Publish(ctx, c.Topic, c.Payload, c.Retain, c.QoS)
}

func (l *mqttasLib) subscribe(ctx context.Context, f string, qos byte) error {
	mc := l.client()
	if mc == nil {
		return errors.New("not connected")
	}
	return mc.Subscribe(ctx, f, qos)
}

func (l *mqttasLib) unsubscribe(ctx context.Context, f string) error {
	mc := l.client()
	if mc == nil {
		return errors.New("not connected")
	}
	return mc.Unsubscribe(ctx, f)
}

func (l *mqttasLib) disconnect(ctx context.Context) error {
	mc := l.client()
	if mc == nil {
		return nil
	}
	return mc.Disconnect(ctx)
}

// close drops the connection without DISCONNECT, then closes the store (its acks written and synced).
func (l *mqttasLib) close() {
	if mc := l.client(); mc != nil {
		_ = mc.Close()
	}
	if l.store != nil {
		_ = l.store.Close()
	}
	if l.fs != nil {
		_ = l.fs.Close()
	}
}

type pahoLib struct {
	d    *driver
	mu   sync.Mutex // guards c and conn
	c    paho.Client
	conn *connack.Conn
}

func (l *pahoLib) client() paho.Client {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.c
}

func (l *pahoLib) connect(ctx context.Context, o *options, s settings) error {
	if o == nil {
		return errors.New("connect without options")
	}
	if s.After == "power-cut" {
		return errors.New("paho's FileStore calls no fsync: the driver cannot tell what a power cut keeps")
	}
	if err := openStore(l.d, s); err != nil {
		return err
	}
	po := paho.NewClientOptions().AddBroker("tcp://" + net.JoinHostPort(o.Host, strconv.Itoa(o.Port))).
		SetClientID(o.ClientID).SetProtocolVersion(4).SetCleanSession(o.CleanSession).
		SetStore(paho.NewFileStore(s.Store)).SetAutoReconnect(true).SetConnectRetry(false).
		SetResumeSubs(true).SetOrderMatters(true).SetMaxReconnectInterval(time.Second).
		SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) {
			l.d.message(m.Topic(), m.Payload(), m.Qos(), m.Retained(), m.Duplicate())
		}).
		SetOnConnectHandler(func(paho.Client) { l.d.up(l.sessionPresent()) }).
		SetConnectionLostHandler(func(_ paho.Client, err error) { l.d.down("connection lost: " + err.Error()) }).
		SetCustomOpenConnectionFn(l.dial)
	if o.KeepAliveMS > 0 {
		po.SetKeepAlive(time.Duration(math.Ceil(float64(o.KeepAliveMS)/1000)) * time.Second)
	}
	if o.ConnectTimeoutMS > 0 {
		po.SetConnectTimeout(time.Duration(o.ConnectTimeoutMS) * time.Millisecond)
	}
	if w := o.Will; w != nil {
		po.SetBinaryWill(w.Topic, w.Payload, w.QoS, w.Retain)
	}
	pc := paho.NewClient(po)
	l.mu.Lock()
	l.c = pc
	l.mu.Unlock()
	tok := pc.Connect()
	select {
	case <-tok.Done():
		return tok.Error()
	case <-ctx.Done():
		return ctx.Err()
	}
}

// sessionPresent reads CONNACK's flag from the connection paho just completed (paho keeps it to itself
// after a reconnect; the in-process adapter reads it the same way).
func (l *pahoLib) sessionPresent() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.conn != nil && l.conn.SessionPresent()
}

func (l *pahoLib) dial(uri *url.URL, o paho.ClientOptions) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", uri.Host, o.ConnectTimeout)
	if err != nil {
		return nil, err
	}
	cc := connack.Wrap(c)
	l.mu.Lock()
	l.conn = cc
	l.mu.Unlock()
	return cc, nil
}

func (l *pahoLib) publish(ctx context.Context, c *command) (bool, error) {
	pc := l.client()
	if pc == nil {
		return false, fmt.Errorf("%w: not connected", errNotSent)
	}
	tok := pc.Publish(c.Topic, c.QoS, c.Retain, c.Payload)
	if c.QoS == 1 {
		select {
		case <-tok.Done(): // refused at once (paho completes the token before storing it)
			if err := tok.Error(); err != nil {
				return false, err
			}
		default:
		}
		return true, nil
	}
	select {
	case <-tok.Done():
		return false, tok.Error()
	case <-ctx.Done():
		return false, ctx.Err()
	}
}

func (l *pahoLib) wait(ctx context.Context, tok paho.Token) error {
	select {
	case <-tok.Done():
		return tok.Error()
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (l *pahoLib) subscribe(ctx context.Context, f string, qos byte) error {
	pc := l.client()
	if pc == nil {
		return errors.New("not connected")
	}
	return l.wait(ctx, pc.Subscribe(f, qos, nil))
}

func (l *pahoLib) unsubscribe(ctx context.Context, f string) error {
	pc := l.client()
	if pc == nil {
		return errors.New("not connected")
	}
	return l.wait(ctx, pc.Unsubscribe(f))
}

func (l *pahoLib) disconnect(context.Context) error {
	if pc := l.client(); pc != nil {
		pc.Disconnect(250)
	}
	return nil
}

// close drops the connection without DISCONNECT (the store's files are written as paho wrote them).
func (l *pahoLib) close() {
	l.mu.Lock()
	if l.conn != nil {
		_ = l.conn.Close()
	}
	l.mu.Unlock()
}
