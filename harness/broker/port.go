package broker

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
)

// Ports are picked below Linux's default ephemeral range (32768–60999): an
// outgoing connection's source port can then never occupy the broker's port
// while the broker is down for a restart.
const (
	portLow  = 23000
	portHigh = 32767
)

// errPortInUse marks a start that failed because the port was taken.
var errPortInUse = errors.New("port in use")

// pickPort returns a random port in [portLow, portHigh] that is free on
// 127.0.0.1 right now. Random rather than sequential so that parallel test
// processes rarely try the same one.
func pickPort() (int, error) {
	const tries = 100
	for range tries {
		p := portLow + rand.IntN(portHigh-portLow+1)
		if portFree(p) {
			return p, nil
		}
	}
	return 0, fmt.Errorf("broker: no free port in %d-%d after %d tries", portLow, portHigh, tries)
}

// portFree reports whether 127.0.0.1:port can be bound now.
func portFree(port int) bool {
	l, err := net.Listen("tcp4", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return false
	}
	_ = l.Close()
	return true
}

// FreePort returns a port free on 127.0.0.1 now, picked as the backends pick
// theirs when Options.Port is 0: below the ephemeral range, so that no
// outgoing connection takes it while a broker is down for a restart. For a
// second listener in Options.Config.
func FreePort() (int, error) { return pickPort() }
