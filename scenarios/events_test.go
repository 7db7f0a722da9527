package scenarios

// The client's connection events, callbacks and connection attempts.

import (
	"context"
	"net"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/mqttas/mqttas-go/mqttas"
)

// waitEventAt waits up to within for ev to be set and returns when Wait returned.
func waitEventAt(ctx context.Context, ev *mqttas.Event, within time.Duration) (time.Time, error) {
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	if err := ev.Wait(ctx); err != nil {
		return time.Time{}, err
	}
	return time.Now(), nil
}

// waitEvent waits (bounded by within) for an mqttas Up or Down event and clears it, so the next wait needs
// a new occurrence. It returns how long it waited.
func waitEvent(ctx context.Context, e *mqttas.Event, within time.Duration, what string) time.Duration {
	GinkgoHelper()
	began := time.Now()
	wctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	Expect(e.Wait(wctx)).To(Succeed(), "waiting for %s", what)
	e.Clear()
	return time.Since(began)
}

// connectionCounters count what a client signalled through its callbacks, to show that nothing fired.
type connectionCounters struct {
	mu         sync.Mutex
	linkUps    int
	linkDowns  int
	onConnects int
}

// install sets cfg's OnLinkChange and OnConnect to count calls.
func (cc *connectionCounters) install(cfg *mqttas.Config) {
	cfg.OnLinkChange = func(up bool) {
		cc.mu.Lock()
		defer cc.mu.Unlock()
		if up {
			cc.linkUps++
		} else {
			cc.linkDowns++
		}
	}
	cfg.OnConnect = func(context.Context, *mqttas.Client) {
		cc.mu.Lock()
		defer cc.mu.Unlock()
		cc.onConnects++
	}
}

// total is the number of callbacks that ran.
func (cc *connectionCounters) total() int {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	return cc.linkUps + cc.linkDowns + cc.onConnects
}

// secDialLog is an mqttas Config.Dial that records when each connection attempt began.
type secDialLog struct {
	mu sync.Mutex
	at []time.Time
}

func (d *secDialLog) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	d.mu.Lock()
	d.at = append(d.at, time.Now())
	d.mu.Unlock()
	var nd net.Dialer
	return nd.DialContext(ctx, network, addr)
}

// between returns the attempts that began in [from, to], oldest first.
func (d *secDialLog) between(from, to time.Time) []time.Time {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []time.Time
	for _, t := range d.at {
		if !t.Before(from) && !t.After(to) {
			out = append(out, t)
		}
	}
	return out
}

// secMaxAttempts is the most connection attempts the client's backoff allows within window after an
// outage: the first at once, then after waits of at least half of ReconnectMin·2^(k−1), capped at ReconnectMax.
func secMaxAttempts(cfg mqttas.Config, window time.Duration) int {
	n, elapsed, delay := 1, time.Duration(0), cfg.ReconnectMin
	for {
		elapsed += delay / 2
		if elapsed > window {
			return n
		}
		n++
		delay = min(2*delay, cfg.ReconnectMax)
	}
}
