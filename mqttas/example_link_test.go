package mqttas_test

import (
	"context"
	"log"
	"time"

	"github.com/mqttas/mqttas-go/mqttas"
)

// A gateway on WiFi (or LTE: "wwan0", "ppp0"): the client watches the interface, so losing the access point
// or the carrier is an outage at once, not after 4 silent ping intervals, and the client reconnects once
// the interface is back (usable for LinkStableFor). The operating system still joins the network; the
// InterfaceLink only watches. Close stops the watch.
func ExampleNewInterfaceLink() {
	link, err := mqttas.NewInterfaceLink("wlan0")
	if err != nil {
		log.Fatal(err) // a bad name, or not Linux (errors.Is(err, errors.ErrUnsupported))
	}
	c, err := mqttas.New(mqttas.Config{
		Server:        "broker.local",
		ClientID:      "gateway-3",
		Link:          link,
		LinkStableFor: 2 * time.Second, // mqtt_as's stability check, shorter than its 5 s
		OnLinkChange:  func(up bool) { log.Printf("MQTT link up: %t", up) },
	})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := c.Connect(ctx); err != nil { // waits for wlan0 to have a carrier and an address
		log.Fatal(err)
	}
	_ = c.Publish(ctx, "gateways/3/status", []byte("online"), true, 1)
}
