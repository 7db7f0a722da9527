package resubscribe

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/mqttas/mqttas-go/harness/clients"
	"github.com/mqttas/mqttas-go/harness/ledger"
)

// fakeClient counts SUBSCRIBEs and fails the next fail of them.
type fakeClient struct {
	mu   sync.Mutex
	subs []string
	fail int
}

func (c *fakeClient) subscribe(_ context.Context, f string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fail > 0 {
		c.fail--
		return errors.New("link down")
	}
	c.subs = append(c.subs, f)
	return nil
}

func (c *fakeClient) subscribed() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.subs)
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestKeeperResubscribesAfterSessionLoss(t *testing.T) {
	t0 := time.Now()
	l := ledger.New(t0)
	c := &fakeClient{}
	var mu sync.Mutex
	var notes []error
	k, err := New(Config{Subscribe: c.subscribe, Ledger: l, Name: "sub", Retry: 5 * time.Millisecond,
		Notify: func(_ time.Time, err error) { mu.Lock(); notes = append(notes, err); mu.Unlock() }})
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	// The first connection comes up without a session before anything is subscribed: nothing to do.
	k.OnEvent(clients.Event{Kind: clients.EventUp, At: t0})
	if err := k.Subscribe(t.Context(), "a/#"); err != nil {
		t.Fatal(err)
	}
	if err := k.Subscribe(t.Context(), "a/#"); err != nil { // kept once
		t.Fatal(err)
	}
	if !k.Ready() || !slices.Equal(c.subscribed(), []string{"a/#", "a/#"}) {
		t.Fatalf("ready %t, subscribed %v", k.Ready(), c.subscribed())
	}
	// A reconnection that kept the session needs nothing.
	k.OnEvent(clients.Event{Kind: clients.EventDown, At: time.Now()})
	k.OnEvent(clients.Event{Kind: clients.EventUp, At: time.Now(), SessionPresent: true})
	if !k.Ready() {
		t.Fatal("a resumed session needs a resubscription")
	}

	// The broker forgot the session; the first two SUBSCRIBEs fail.
	c.mu.Lock()
	c.fail = 2
	c.mu.Unlock()
	id := func(seq uint64) ledger.ID { return ledger.ID{Publisher: "p", Topic: "a/1", Seq: seq} }
	down := time.Now()
	k.OnEvent(clients.Event{Kind: clients.EventDown, At: down})
	l.Complete(l.Invoke(id(1), down.Add(time.Millisecond)), ledger.OK, down.Add(time.Millisecond), nil) // gone with the session
	k.OnEvent(clients.Event{Kind: clients.EventUp, At: time.Now()})
	eventually(t, "the resubscription", func() bool { return len(c.subscribed()) == 3 })
	eventually(t, "ready", k.Ready)
	mu.Lock()
	if len(notes) != 3 || notes[0] == nil || notes[1] == nil || notes[2] != nil {
		t.Fatalf("notifications %v: want two failures, then success", notes)
	}
	mu.Unlock()
	// After the new SUBACK the window is open again: a message published now must arrive.
	at := time.Now().Add(time.Millisecond)
	l.Complete(l.Invoke(id(2), at), ledger.OK, at, nil)
	res := l.Check()
	if len(res.Lost) != 1 || res.Lost[0].ID != id(2) {
		t.Fatalf("lost %v: want only the message published after the resubscription", res.Lost)
	}
	l.Deliver(ledger.Delivery{Subscriber: "sub", Topic: "a/1", Payload: ledger.Encode(id(2), at), QoS: 1, At: at})
	if res := l.Check(); !res.Valid() {
		t.Fatalf("after the delivery: %s", res.Summary())
	}
}

// A session lost again while the resubscription runs is not forgotten.
func TestKeeperSecondLossDuringResubscription(t *testing.T) {
	entered, release := make(chan struct{}, 4), make(chan struct{})
	var mu sync.Mutex
	n := 0
	sub := func(ctx context.Context, _ string) error {
		mu.Lock()
		n++
		first := n == 2 // the first resubscription (n == 1 is the initial SUBSCRIBE)
		mu.Unlock()
		if first {
			entered <- struct{}{}
			<-release
		}
		return nil
	}
	k, err := New(Config{Subscribe: sub, Retry: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	if err := k.Subscribe(t.Context(), "x"); err != nil {
		t.Fatal(err)
	}
	k.OnEvent(clients.Event{Kind: clients.EventDown, At: time.Now()})
	k.OnEvent(clients.Event{Kind: clients.EventUp, At: time.Now()})
	<-entered
	k.OnEvent(clients.Event{Kind: clients.EventDown, At: time.Now()})
	k.OnEvent(clients.Event{Kind: clients.EventUp, At: time.Now()})
	close(release)
	eventually(t, "the second resubscription", func() bool { mu.Lock(); defer mu.Unlock(); return n == 3 })
	eventually(t, "ready", k.Ready)
}

func TestKeeperNeedsSubscribe(t *testing.T) {
	if _, err := New(Config{}); !errors.Is(err, clients.ErrInvalidOptions) {
		t.Fatalf("got %v", err)
	}
}
