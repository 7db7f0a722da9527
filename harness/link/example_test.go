package link_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"syscall"
	"time"

	"github.com/mqttas/mqttas-go/harness/link"
	"github.com/mqttas/mqttas-go/harness/link/mqttframe"
)

// A link between a client and a broker: take it down, bring it back.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	broker, _ := net.Listen("tcp", "127.0.0.1:0") // stands in for mosquitto
	defer broker.Close()

	l, err := link.New(ctx, broker.Addr().String())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer l.Close()

	_ = l.Down(ctx)
	_, err = net.Dial("tcp", l.Addr())
	fmt.Println("while down, refused:", errors.Is(err, syscall.ECONNREFUSED))
	fmt.Println("active:", l.Active()[0].Verb)

	_ = l.Heal(ctx)
	c, err := net.Dial("tcp", l.Addr())
	fmt.Println("after heal, connected:", err == nil)
	c.Close()
	// Output:
	// while down, refused: true
	// active: down
	// after heal, connected: true
}

// Lose every PUBACK the broker sends, then check what the tap saw.
func ExampleLink_DropPackets() {
	ctx := context.Background()
	brokerAddr := "127.0.0.1:1883" // a running broker

	l, err := link.New(ctx, brokerAddr)
	if err != nil {
		return
	}
	defer l.Close()
	_ = l.DropPackets(link.Downstream, mqttframe.PUBACK, -1)

	// ... the client under test connects to l.Addr() and publishes at QoS 1 ...

	wait, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	p, err := l.Tap().WaitFor(wait, link.OfType(mqttframe.PUBACK), link.WithFate(link.Dropped))
	if err != nil {
		fmt.Println(l.Tap()) // the dump shows what did cross the link
		return
	}
	fmt.Println("dropped PUBACK for packet", p.ID, "on connection", p.Conn)
}
