package mqttas

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"time"
)

// Connect makes the first connection: it brings the Link up (waiting LinkStableFor when there is one),
// connects, and from then on keeps the client connected until Disconnect or Close. Its errors are returned
// (e.g. a *ConnackError); a failed Connect starts nothing and fires no event, and may be called again.
func (c *Client) Connect(ctx context.Context) error { return c.connect(ctx, false) }

// ConnectQuick is Connect without the Link stability wait on this first connection (mqtt_as's quick=True).
func (c *Client) ConnectQuick(ctx context.Context) error { return c.connect(ctx, true) }

func (c *Client) connect(ctx context.Context, quick bool) error {
	c.mu.Lock()
	switch c.state {
	case stateClosed:
		c.mu.Unlock()
		return ErrClosed
	case stateIdle:
	default:
		c.mu.Unlock()
		return errors.New("mqttas: Connect called while connected or connecting")
	}
	c.state = stateConnecting
	c.mu.Unlock()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(c.closedCtx, cancel)() // Close ends a first Connect in progress

	returned := false
	defer func() {
		if !returned {
			// A Config.Dial or Link callback panicked on the caller's goroutine: leave the client as a failed
			// Connect does (it may be called again) and let the panic go on to the caller.
			c.mu.Lock()
			if c.state == stateConnecting {
				c.state = stateIdle
			}
			c.mu.Unlock()
			if c.cfg.Link != nil {
				_ = c.cfg.Link.Disconnect()
			}
		}
	}()
	s, err := c.firstSession(ctx, quick)
	returned = true
	c.mu.Lock()
	if err == nil && c.state != stateConnecting {
		s.end(ErrClosed, true)
		err = ErrClosed
	}
	if err != nil {
		if c.state == stateConnecting {
			c.state = stateIdle
		}
		c.mu.Unlock()
		if c.cfg.Link != nil {
			_ = c.cfg.Link.Disconnect()
		}
		if c.closedCtx.Err() != nil {
			return ErrClosed
		}
		return err
	}
	// The supervisor is started under mu while not closed, and the session's goroutines (goUp) while it
	// runs, so Close's wg.Wait never races a wg.Add from a zero count. goUp runs here, not on the
	// supervisor: its calls would grow the supervisor's stack, which an idle client keeps.
	run, stopRun := context.WithCancel(context.Background())
	runDone := make(chan struct{})
	upDone := make(chan struct{})
	c.run, c.stopRun, c.runDone = run, stopRun, runDone
	obDone := make(chan struct{})
	if c.ob != nil {
		c.wg.Go(func() {
			defer close(obDone)
			<-upDone
			c.runOutbox(run)
		})
	} else {
		close(obDone)
	}
	c.wg.Go(func() {
		defer close(runDone)
		<-upDone
		c.supervise(run, s)
		<-obDone // Disconnect waits for the outbox too: a later Connect starts a new one
	})
	c.mu.Unlock()
	c.goUp(s, false)
	close(upDone)
	return nil
}

// firstSession brings the link up and connects, running the clean-init dance where it applies.
func (c *Client) firstSession(ctx context.Context, quick bool) (*session, error) {
	if err := c.linkUp(ctx, !quick); err != nil {
		return nil, err
	}
	if c.cfg.KeepSession && !c.cfg.ResumeSession {
		// Discard any old session, then keep one from now on (spec §8). mqtt_as slept 2 s after DISCONNECT;
		// waiting for the broker to close the connection shows it has processed the DISCONNECT.
		s, err := c.dialSession(ctx, true)
		if err != nil {
			return nil, err
		}
		c.closeGracefully(s)
	}
	return c.dialSession(ctx, !c.cfg.KeepSession)
}

// closeGracefully writes DISCONNECT on a session that has no goroutines yet and waits (up to ResponseTime)
// for the broker to close the connection.
func (c *Client) closeGracefully(s *session) {
	_ = s.conn.SetDeadline(time.Now().Add(c.cfg.ResponseTime))
	if _, err := s.conn.Write(disconnectBytes); err == nil {
		_, _ = io.Copy(io.Discard, s.br)
	}
	s.end(nil, true)
}

// linkUp brings the Link up, waiting LinkStableFor (unless skipped) to see that it stays up.
func (c *Client) linkUp(ctx context.Context, stable bool) error {
	l := c.cfg.Link
	if l == nil {
		return nil
	}
	if err := l.Connect(ctx); err != nil {
		return fmt.Errorf("%w: %w", ErrLinkDown, err)
	}
	if !stable {
		return nil
	}
	t := time.NewTimer(c.cfg.LinkStableFor)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-l.Lost():
		return fmt.Errorf("%w: link unstable, lost within %v", ErrLinkDown, c.cfg.LinkStableFor)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// dial opens the transport: TCP (or Config.Dial) and TLS. Host names are resolved on every call, so a
// broker that moves is found again (mqtt_as resolved once for life).
func (c *Client) dial(ctx context.Context) (net.Conn, error) {
	dial := c.cfg.Dial
	if dial == nil {
		d := net.Dialer{Resolver: c.resolver}
		dial = d.DialContext
	}
	conn, err := dial(ctx, "tcp", c.cfg.addr())
	if err != nil {
		return nil, err
	}
	if c.cfg.TLS == nil {
		return conn, nil
	}
	tc := c.cfg.TLS.Clone()
	if tc.ServerName == "" {
		tc.ServerName = c.cfg.Server // also with InsecureSkipVerify: the broker may need SNI
	}
	t := tls.Client(conn, tc)
	if err := t.HandshakeContext(ctx); err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("TLS handshake: %w", err)
	}
	return t, nil
}

// dialSession connects and completes CONNECT/CONNACK within ResponseTime (and ctx).
func (c *Client) dialSession(parent context.Context, clean bool) (*session, error) {
	ctx, cancel := context.WithTimeout(parent, c.cfg.ResponseTime)
	defer cancel()
	// fail explains err: the broker's refusal and protocol errors as they are, a wait cut short by
	// ResponseTime as ErrTimeout, one cut short by the caller as the caller's context error.
	fail := func(conn net.Conn, err error) (*session, error) {
		if conn != nil {
			_ = conn.Close()
		}
		// The dialer puts ctx's deadline on the socket, and that can fire before ctx's own timer: let ctx
		// catch up, or the timeout would be reported as a bare i/o timeout, not ErrTimeout.
		var ne net.Error
		if d, _ := ctx.Deadline(); errors.As(err, &ne) && ne.Timeout() && !time.Now().Before(d) {
			<-ctx.Done()
		}
		switch {
		case errors.Is(err, ErrProtocol):
			c.stats.protocolErrors.Add(1) // a malformed CONNACK counts like any other malformed packet
		case errors.Is(err, ErrConnectionRefused):
		case parent.Err() != nil:
			err = parent.Err()
		case ctx.Err() != nil:
			err = fmt.Errorf("%w (%v): %v", ErrTimeout, c.cfg.ResponseTime, err)
		}
		return nil, fmt.Errorf("connecting to %s: %w", c.cfg.addr(), err)
	}
	conn, err := c.dial(ctx)
	if err != nil {
		return fail(nil, err)
	}
	// The deadline carries ctx's end to the blocking CONNECT write and CONNACK read. It is set only once ctx
	// has ended: a socket deadline at ctx's deadline could fire before ctx's own timer, and fail would then
	// see a bare i/o timeout instead of ErrTimeout.
	stopWatch := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Now()) })
	defer stopWatch()
	b := appendConnect(nil, connectFields{
		clientID:  c.cfg.ClientID,
		clean:     clean,
		keepAlive: uint16(c.cfg.KeepAlive / time.Second),
		will:      c.cfg.Will,
		user:      c.cfg.User,
		password:  c.cfg.Password,
	})
	if _, err := conn.Write(b); err != nil {
		return fail(conn, err)
	}
	rx := &rxConn{conn: conn, rt: c.cfg.ResponseTime, sock: kernelSocket(conn)}
	br := newRxBuffer(rx)
	p, _, err := readPacket(br, 4, nil)
	switch {
	case errors.Is(err, io.EOF):
		return fail(conn, fmt.Errorf("broker closed the connection before CONNACK: %w", err))
	case err != nil:
		return fail(conn, err)
	case p.typ != typeConnack:
		return fail(conn, protoErr(p.typ, "expected CONNACK"))
	case p.code != 0:
		return fail(conn, &ConnackError{Code: p.code})
	}
	if !stopWatch() {
		return fail(conn, ctx.Err())
	}
	_ = conn.SetDeadline(time.Time{})
	c.stats.sessionPresent.Store(p.sessionPresent)
	c.mu.Lock()
	c.epoch++
	epoch := c.epoch
	c.mu.Unlock()
	c.log.Debug("mqttas: connected", "addr", c.cfg.addr(), "clean", clean, "sessionPresent", p.sessionPresent)
	return newSession(c, conn, rx, br, epoch), nil
}

// goUp starts s's goroutines, publishes it to callers and signals the connection.
func (c *Client) goUp(s *session, reconnect bool) {
	c.wg.Go(s.readLoop)
	c.wg.Go(s.writeLoop)
	c.mu.Lock()
	if c.state == stateClosed || c.state == stateIdle {
		c.mu.Unlock()
		s.end(ErrClosed, true)
		return
	}
	c.state = stateUp
	c.sess = s
	close(c.sessCh)
	c.mu.Unlock()
	c.stats.connects.Add(1)
	if reconnect {
		c.stats.reconnects.Add(1)
	}
	c.up.set()
	c.notifyLink(true)
	if h := c.cfg.OnConnect; h != nil && c.queue == nil {
		c.wg.Go(func() { h(s.hookCtx, c) })
	}
}

// goDown records the end of s. A deliberate end (Disconnect, Close) signals nothing.
func (c *Client) goDown(s *session) {
	c.mu.Lock()
	if c.sess == s {
		c.sess = nil
		c.sessCh = make(chan struct{})
		if c.state == stateUp {
			c.state = stateReconnecting
		}
	}
	close(s.gone)
	c.mu.Unlock()
	if s.quiet {
		return
	}
	c.mu.Lock()
	c.lastErr = s.err
	c.mu.Unlock()
	c.stats.outages.Add(1)
	c.log.Info("mqttas: outage", "err", s.err)
	c.down.set()
	c.notifyLink(false)
}

// supervise keeps the client connected until run ends: it pings on each session, and after an outage
// reconnects with backoff. It never gives up and never dies on an error.
func (c *Client) supervise(run context.Context, s *session) {
	for {
		stopPings := s.startPings()
		if c.cfg.Link != nil {
			select {
			case <-s.done:
			case <-run.Done():
			case <-c.cfg.Link.Lost():
				s.end(ErrLinkDown, false)
			}
		} else {
			// One plain receive: the shallowest way to park, so the stack of an idle client's supervisor
			// stays at (or shrinks back to) the minimum. Disconnect and Close end the session they stop.
			<-s.done
		}
		stopPings()
		if run.Err() != nil {
			return
		}
		c.goDown(s)
		if s = c.reconnect(run); s == nil {
			return
		}
		c.goUp(s, true)
	}
}

// reconnect retries until it has a session or ctx ends: the first attempt at once, then with capped
// exponential backoff and jitter (mqtt_as used a fixed ~7 s cycle with no backoff).
func (c *Client) reconnect(ctx context.Context) *session {
	delay := time.Duration(0)
	for attempt := 1; ; attempt++ {
		if ctx.Err() != nil {
			return nil
		}
		if c.cfg.Link != nil {
			_ = c.cfg.Link.Disconnect() // take the whole chain down so every hop notices (spec §1)
		}
		err := c.linkUp(ctx, true)
		if err == nil {
			var s *session
			if s, err = c.dialSession(ctx, !c.cfg.KeepSession); err == nil {
				return s
			}
		}
		if ctx.Err() != nil {
			return nil
		}
		c.stats.failedAttempts.Add(1)
		switch {
		case delay == 0:
			delay = c.cfg.ReconnectMin
		default:
			delay = min(2*delay, c.cfg.ReconnectMax)
		}
		wait := backoffWait(delay)
		c.log.Debug("mqttas: reconnect attempt failed", "attempt", attempt, "err", err, "retryIn", wait)
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil
		}
	}
}

// backoffWait draws the wait before the next attempt from [delay/2, delay]: the jitter spreads a fleet
// reconnecting to a restarted broker.
func backoffWait(delay time.Duration) time.Duration { return delay/2 + rand.N(delay/2+1) }

// Disconnect sends DISCONNECT (so the broker discards the will), closes the connection and stops
// reconnecting. No Down event follows. Calls waiting for a connection or an acknowledgement return
// ErrDisconnected. Connect may be called again afterwards.
func (c *Client) Disconnect(ctx context.Context) error {
	c.mu.Lock()
	switch c.state {
	case stateClosed:
		c.mu.Unlock()
		return ErrClosed
	case stateIdle, stateConnecting:
		c.mu.Unlock()
		return ErrNotConnected
	}
	s, runDone := c.sess, c.runDone
	c.state = stateIdle
	c.sess = nil
	c.sessCh = make(chan struct{})
	c.stopRun()
	c.mu.Unlock()

	var err error
	if s != nil {
		// DISCONNECT queues behind the publications already queued, so every qos 0 Publish that returned is
		// written first. On a dead link the writer's inactivity rule (ResponseTime without progress) ends the
		// session, which bounds the wait.
		b := getBuf()
		*b = append(*b, disconnectBytes...)
		written := make(chan struct{})
		if c.enqueue(ctx, s, outItem{buf: b, epoch: s.epoch, pooled: true, done: written}) {
			select {
			case <-written:
			case <-s.done:
			case <-ctx.Done():
				err = ctx.Err()
			}
		} else if ctx.Err() != nil {
			err = ctx.Err()
		}
		s.end(ErrDisconnected, true)
	}
	c.dropQueued() // publications queued after DISCONNECT must not go out on a later Connect
	select {
	case <-runDone:
	case <-ctx.Done():
		if err == nil {
			err = ctx.Err()
		}
	}
	if c.cfg.Link != nil {
		_ = c.cfg.Link.Disconnect()
	}
	return err
}

// Close stops the client at once, without DISCONNECT (the broker publishes the will, if any), waits for
// every goroutine the client started, OnConnect hooks included, to return, and then takes the Link down
// (as mqtt_as's close() switches WiFi off), whether or not the client ever connected. Calls in progress
// return ErrClosed. Close is idempotent: only the first call disconnects the Link.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.state == stateClosed {
		c.mu.Unlock()
		return nil
	}
	c.state = stateClosed
	s := c.sess
	c.sess = nil
	c.stopRun()
	close(c.closed)
	c.closeCtx()
	c.mu.Unlock()
	if s != nil {
		s.end(ErrClosed, true)
	}
	c.wg.Wait()
	c.dropQueued()
	if c.cfg.Link != nil {
		// After wg.Wait: no reconnection can bring the link up again behind this. A first Connect still
		// unwinding takes it down too; Link.Disconnect must be safe to call twice.
		_ = c.cfg.Link.Disconnect()
	}
	return nil
}

// dropQueued discards what waits for a writer that will not come.
func (c *Client) dropQueued() {
	for {
		select {
		case it := <-c.out:
			if it.pooled {
				putBuf(it.buf)
			}
			if it.done != nil {
				close(it.done)
			}
		default:
			return
		}
	}
}
