// Package resubscribe keeps a client's subscriptions across session losses, as mqtt_as's connect_coro
// does: when a connection comes up without the session the broker kept (always, for a clean session;
// after a broker restart without persistence, for a persistent one), every filter is subscribed again.
// The observer and the soak's clients both keep their subscriptions with a Keeper.
//
// With a ledger, each subscription is a window in it: the window opens once the broker acknowledged the
// SUBSCRIBE, and after a session loss it closes at the moment the connection dropped (what was published
// while the broker held no subscription is gone by the broker's doing) and opens again at the new SUBACK.
package resubscribe

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/mqttas/mqttas-go/harness/clients"
	"github.com/mqttas/mqttas-go/harness/ledger"
)

// Config configures a Keeper.
type Config struct {
	// Subscribe subscribes the client to one filter (at the qos the caller wants). Required.
	Subscribe func(ctx context.Context, filter string) error
	// Ledger, if set, gets a window per subscription under Name (see the package comment); nil records
	// none, e.g. for a clean session whose losses no window could describe exactly.
	Ledger *ledger.Ledger
	Name   string
	// Timeout bounds each SUBSCRIBE; default 10 s.
	Timeout time.Duration
	// Retry is the wait before trying again after a failed resubscription; default 500 ms. A Keeper keeps
	// trying until it succeeds or is closed.
	Retry time.Duration
	// Notify, if set, is called after each resubscription attempt, with its error (nil: every filter is
	// subscribed again). It runs on the Keeper's goroutine.
	Notify func(at time.Time, err error)
	// Logger receives debug output; nil discards it.
	Logger *slog.Logger
}

// Keeper keeps a client's subscriptions. Feed it the client's events (OnEvent) and subscribe through it
// (Subscribe); Close stops it. Its methods are safe for concurrent use.
type Keeper struct {
	cfg    Config
	log    *slog.Logger
	kick   chan struct{}
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex
	filters []string
	downAt  time.Time // when the connection went down; zero while up
	lostAt  time.Time // when the connection whose session the broker forgot went down
	need    bool      // a resubscription is pending
	gen     int       // counts session losses, so one during a resubscription is not forgotten
	last    time.Time // when the connection of the latest session loss went down
}

// New starts a Keeper.
func New(cfg Config) (*Keeper, error) {
	if cfg.Subscribe == nil {
		return nil, fmt.Errorf("resubscribe: %w: Subscribe is required", clients.ErrInvalidOptions)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.Retry <= 0 {
		cfg.Retry = 500 * time.Millisecond
	}
	k := &Keeper{cfg: cfg, log: cfg.Logger, kick: make(chan struct{}, 1), done: make(chan struct{})}
	if k.log == nil {
		k.log = slog.New(slog.DiscardHandler)
	}
	k.ctx, k.cancel = context.WithCancel(context.Background())
	go k.run()
	return k, nil
}

// Subscribe subscribes to filter now, opens its ledger window once the broker acknowledged it, and keeps
// it from then on.
func (k *Keeper) Subscribe(ctx context.Context, filter string) error {
	if err := k.subscribe(ctx, filter); err != nil {
		return err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if !slices.Contains(k.filters, filter) {
		k.filters = append(k.filters, filter)
	}
	return nil
}

func (k *Keeper) subscribe(ctx context.Context, filter string) error {
	sctx, cancel := context.WithTimeout(ctx, k.cfg.Timeout)
	defer cancel()
	if err := k.cfg.Subscribe(sctx, filter); err != nil {
		return err
	}
	if k.cfg.Ledger != nil {
		k.cfg.Ledger.Subscribe(k.cfg.Name, filter, time.Now())
	}
	return nil
}

// OnEvent takes one of the client's events: a connection that came up without the session, once there
// are filters to keep, starts a resubscription. It does not block.
func (k *Keeper) OnEvent(e clients.Event) {
	kick := false
	k.mu.Lock()
	switch e.Kind {
	case clients.EventDown:
		if k.downAt.IsZero() {
			k.downAt = e.At
		}
	case clients.EventUp:
		if !e.SessionPresent && len(k.filters) > 0 {
			if !k.need {
				k.lostAt = k.downAt // a second loss before the resubscription keeps the first moment
			}
			k.need, kick = true, true
			k.gen++
			k.last = k.downAt
		}
		k.downAt = time.Time{}
	}
	k.mu.Unlock()
	if kick {
		select {
		case k.kick <- struct{}{}:
		default:
		}
	}
}

// Ready reports whether no resubscription is pending.
func (k *Keeper) Ready() bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return !k.need
}

// Close stops the Keeper, abandoning a resubscription in progress, and waits for it. It may be called
// more than once.
func (k *Keeper) Close() {
	k.cancel()
	<-k.done
}

func (k *Keeper) run() {
	defer close(k.done)
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	defer retry.Stop()
	for {
		select {
		case <-k.ctx.Done():
			return
		case <-k.kick:
		case <-retry.C:
		}
		k.mu.Lock()
		need, lostAt, gen, filters := k.need, k.lostAt, k.gen, slices.Clone(k.filters)
		k.mu.Unlock()
		if !need {
			continue
		}
		var err error
		for _, f := range filters {
			if k.cfg.Ledger != nil && !lostAt.IsZero() {
				k.cfg.Ledger.Unsubscribe(k.cfg.Name, f, lostAt)
			}
			if err = k.subscribe(k.ctx, f); err != nil {
				err = fmt.Errorf("resubscribe %s: %w", f, err)
				break
			}
		}
		if k.ctx.Err() != nil {
			return
		}
		if k.cfg.Notify != nil {
			k.cfg.Notify(time.Now(), err)
		}
		if err != nil {
			k.log.Debug("resubscribe failed", "err", err)
			retry.Reset(k.cfg.Retry)
			continue
		}
		k.mu.Lock()
		if k.gen == gen {
			k.need, k.lostAt = false, time.Time{}
		} else {
			// The session was lost again meanwhile (the kick is waiting): the windows just opened close
			// when that connection went down.
			k.lostAt = k.last
		}
		k.mu.Unlock()
	}
}
