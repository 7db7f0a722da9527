package mqttas_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"os"
	"time"

	"github.com/mqttas/mqttas-go/mqttas"
)

// A publisher that never loses a qos 1 message: Publish returns only after the broker's PUBACK, re-sending
// through any outage, so the loop needs no retry logic of its own.
func Example() {
	// The zero value of every other field is mqtt_as's default: KeepAlive 60 s, ResponseTime 10 s,
	// MaxRepubs 4, a clean session.
	c, err := mqttas.New(mqttas.Config{
		Server:   "127.0.0.1",
		ClientID: "sensor-7",
		Logger:   slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo})),
	})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	ctx := context.Background()
	if err := c.Connect(ctx); err != nil {
		log.Fatal(err) // the first connection's errors are the caller's; later outages are not
	}
	for i := 0; i < 10; i++ {
		if err := c.Publish(ctx, "sensors/7/temp", fmt.Appendf(nil, "%d", 20+i), false, 1); err != nil {
			log.Fatal(err)
		}
	}
	_ = c.Disconnect(ctx)
}

// The event interface: messages arrive on a bounded queue, and Up and Down say when the link changes.
// In a clean session (the default) the broker forgets subscriptions on every reconnection, so resubscribe on
// each Up.
func ExampleClient_Queue() {
	c, err := mqttas.New(mqttas.Config{Server: "127.0.0.1", QueueLen: 100})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := c.Connect(ctx); err != nil {
		log.Fatal(err)
	}
	go func() {
		for c.Up().Wait(ctx) == nil {
			c.Up().Clear()
			if err := c.Subscribe(ctx, "commands/#", 1); err != nil {
				return
			}
		}
	}()
	for {
		m, err := c.Queue().Next(ctx)
		if err != nil {
			return
		}
		fmt.Printf("%s: %s (queue discarded %d)\n", m.Topic, m.Payload, c.Queue().Discards())
	}
}

// The callback interface: OnConnect runs once per connection with a context that ends with it.
func ExampleConfig_callbacks() {
	c, err := mqttas.New(mqttas.Config{
		Server:    "broker.local",
		OnMessage: func(m mqttas.Message) { fmt.Printf("%s %s\n", m.Topic, m.Payload) },
		OnConnect: func(ctx context.Context, c *mqttas.Client) {
			_ = c.Subscribe(ctx, "commands/#", 1)
		},
		OnLinkChange: func(up bool) { fmt.Println("link up:", up) },
	})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	_ = c.Connect(context.Background())
}

// The first connection's refusal is an error you can inspect.
func ExampleConnackError() {
	c, err := mqttas.New(mqttas.Config{Server: "127.0.0.1", User: "device", Password: "wrong"})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	err = c.Connect(context.Background())
	var refused *mqttas.ConnackError
	if errors.As(err, &refused) && refused.Code == 5 {
		fmt.Println("not authorised: check the credentials")
	}
}

// Bad arguments are refused before any I/O, with errors you can test.
func ExampleClient_Publish_validation() {
	c, _ := mqttas.New(mqttas.Config{Server: "127.0.0.1"})
	defer c.Close()
	err := c.Publish(context.Background(), "sensors/+/temp", nil, false, 1)
	fmt.Println(errors.Is(err, mqttas.ErrInvalidTopic))
	err = c.Publish(context.Background(), "sensors/7", nil, false, 2)
	fmt.Println(errors.Is(err, mqttas.ErrInvalidQoS))
	// Output:
	// true
	// true
}

// A publisher whose qos 1 messages survive a crash or a power cut: PublishDurable returns once the message
// is fsynced in the store, and whatever the broker had not acknowledged when the process died is sent again
// by the next run, in order.
func ExampleClient_PublishDurable() {
	st, err := mqttas.OpenFileStore("/var/lib/sensor-7/outbox")
	var damaged *mqttas.RecoveryError
	switch {
	case errors.As(err, &damaged):
		// The log was damaged (a disk that ignores flushes, a bad sector): what could be read was
		// recovered and the store is usable; damaged.Damage says what was dropped.
		log.Printf("outbox: %v", damaged)
	case err != nil:
		log.Fatal(err) // e.g. mqttas.ErrStoreLocked: another process has the directory
	}
	defer st.Close() // after the client's Close

	c, err := mqttas.New(mqttas.Config{Server: "127.0.0.1", ClientID: "sensor-7", Store: st})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	if err := c.Connect(ctx); err != nil {
		log.Fatal(err)
	}
	for i := range 10 {
		err := c.PublishDurable(ctx, "sensors/7/temp", fmt.Appendf(nil, "%d", 20+i), false)
		if errors.Is(err, mqttas.ErrStoreFull) {
			log.Printf("disk full: reading %d not stored", i) // nothing stored before is lost
			continue
		}
		if err != nil {
			log.Fatal(err)
		}
	}
}
