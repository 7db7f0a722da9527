package broker_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/mqttas/mqttas-go/harness/broker"
)

// A broker for one test: chosen by MQTTAS_BROKER (or automatically), crashed,
// brought back on the same address, and removed at the end.
func ExampleNew() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	b, err := broker.New(ctx, broker.Options{
		Config: []string{"max_queued_messages 100"},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer b.Close(context.Background())

	fmt.Println("broker at", b.Addr())
	if err := b.Kill(ctx); err != nil { // crash: loses what autosave did not write
		log.Print(err)
		return
	}
	if err := b.Start(ctx); err != nil { // same address, ready for CONNECT
		log.Print(err)
	}
}

// A hung broker: TCP connects, but no CONNACK arrives.
func ExampleProbe() {
	ctx := context.Background()
	b, err := broker.New(ctx, broker.Options{Backend: broker.KindProcess})
	if err != nil {
		log.Fatal(err)
	}
	defer b.Close(ctx)
	_ = b.Pause(ctx)
	pctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	fmt.Println(broker.Probe(pctx, b.Addr()) != nil)
	_ = b.Unpause(ctx)
}
