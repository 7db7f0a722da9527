package broker

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/mqttas/mqttas-go/internal/mqttwire"
)

// ConnackError reports a CONNACK that refused the probe's connection. The
// broker is up and speaking MQTT; it just did not accept an anonymous client.
type ConnackError struct {
	Code byte // MQTT 3.1.1 return code, 1..5
}

func (e *ConnackError) Error() string {
	return fmt.Sprintf("CONNACK return code %d (%s)", e.Code, connackText(e.Code))
}

func connackText(code byte) string {
	switch code {
	case 1:
		return "unacceptable protocol version"
	case 2:
		return "identifier rejected"
	case 3:
		return "server unavailable"
	case 4:
		return "bad user name or password"
	case 5:
		return "not authorized"
	}
	return "unknown"
}

// probeConnect is an MQTT 3.1.1 CONNECT: clean session, keepalive 60 s, empty
// client identifier (the broker assigns one).
var probeConnect = mqttwire.Connect{CleanSession: true, KeepAlive: 60}.Bytes()

// defaultProbeTimeout bounds a Probe whose context has no deadline.
const defaultProbeTimeout = 5 * time.Second

// Probe connects to addr, sends an MQTT 3.1.1 CONNECT and reads the CONNACK.
// It returns nil for an accepted connection, a *ConnackError for a refused
// one, and otherwise the network or context error (errors.Is(err,
// context.DeadlineExceeded) when a hung broker never answers). Without a
// deadline on ctx it gives up after 5 s.
func Probe(ctx context.Context, addr string) error { return probe(ctx, addr, nil) }

// probe is Probe, over TLS when tc is not nil.
func probe(ctx context.Context, addr string, tc *tls.Config) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, defaultProbeTimeout)
		defer cancel()
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("probe %s: %w", addr, err)
	}
	defer conn.Close()
	// Unblock the read below when ctx ends.
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if tc != nil {
		conn = tls.Client(conn, tc)
	}
	err = exchange(conn)
	if err != nil && ctx.Err() != nil {
		return fmt.Errorf("probe %s: no CONNACK: %w", addr, context.Cause(ctx))
	}
	if err != nil {
		return fmt.Errorf("probe %s: %w", addr, err)
	}
	return nil
}

func exchange(conn net.Conn) error {
	if _, err := conn.Write(probeConnect); err != nil {
		return err
	}
	// A CONNACK is four bytes; reading exactly those leaves a peer that is not
	// MQTT no chance to make the probe wait for a long "packet".
	var buf [4]byte
	if _, err := io.ReadFull(conn, buf[:]); err != nil {
		return fmt.Errorf("reading CONNACK: %w", err)
	}
	p, _, err := mqttwire.Decode(buf[:])
	if err != nil || p.Type != mqttwire.CONNACK {
		return fmt.Errorf("want CONNACK 20 02, got % x", buf[:2])
	}
	ack, err := p.Connack()
	if err != nil {
		return err
	}
	if ack.Code != 0 {
		return &ConnackError{Code: ack.Code}
	}
	// A polite DISCONNECT keeps "exceeded timeout" noise out of the broker log.
	_, _ = conn.Write(mqttwire.Empty(mqttwire.DISCONNECT).Bytes())
	return nil
}

// answers reports whether a Probe result shows a broker speaking MQTT,
// including one that refuses anonymous clients.
func answers(err error) bool {
	var ce *ConnackError
	return err == nil || errors.As(err, &ce)
}
