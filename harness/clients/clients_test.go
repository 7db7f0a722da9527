package clients

import (
	"errors"
	"slices"
	"testing"
)

// fake is just enough Client to exercise the registry.
type fake struct {
	Client
	opts Options
}

func TestRegistry(t *testing.T) {
	r := Registry{
		"paho":   func(o Options) (Client, error) { return &fake{opts: o}, nil },
		"mqttas": func(o Options) (Client, error) { return nil, ErrInvalidOptions },
	}
	if got := r.Names(); !slices.Equal(got, []string{"mqttas", "paho"}) {
		t.Fatalf("Names() = %v", got)
	}
	c, err := r.New("paho", Options{Addr: "127.0.0.1:1", ClientID: "x"})
	if err != nil || c.(*fake).opts.ClientID != "x" {
		t.Fatalf("New(paho) = %v, %v", c, err)
	}
	if _, err := r.New("mqttas", Options{}); !errors.Is(err, ErrInvalidOptions) {
		t.Fatalf("factory error not passed through: %v", err)
	}
	_, err = r.New("hivemq", Options{})
	if !errors.Is(err, ErrUnknownClient) || err.Error() != `clients: unknown client "hivemq" (have [mqttas paho])` {
		t.Fatalf("New(unknown) = %v", err)
	}
}

func TestValidate(t *testing.T) {
	good := Options{Addr: "127.0.0.1:1883", Will: &Message{Topic: "w", QoS: 1}}
	if err := good.Validate(); err != nil {
		t.Fatalf("Validate(good) = %v", err)
	}
	bad := []Options{
		{},
		{Addr: "a:1", KeepAlive: -1},
		{Addr: "a:1", Will: &Message{QoS: 1}},
		{Addr: "a:1", Will: &Message{Topic: "w", QoS: 3}},
	}
	for _, o := range bad {
		if err := o.Validate(); !errors.Is(err, ErrInvalidOptions) {
			t.Errorf("Validate(%+v) = %v, want ErrInvalidOptions", o, err)
		}
	}
}

func TestEventDetail(t *testing.T) {
	cases := []struct {
		e    Event
		want string
	}{
		{Event{Kind: EventUp, SessionPresent: true}, "session_present=true"},
		{Event{Kind: EventDown, Err: errors.New("EOF")}, "EOF"},
		{Event{Kind: EventReconnect}, ""},
	}
	for _, c := range cases {
		if got := c.e.Detail(); got != c.want {
			t.Errorf("%v.Detail() = %q, want %q", c.e.Kind, got, c.want)
		}
	}
}
