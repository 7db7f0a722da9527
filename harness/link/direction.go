package link

import "fmt"

// Direction is a flow through the link. Upstream and Downstream are bits, so
// Both covers the two.
type Direction uint8

const (
	// Upstream is client → broker (toxiproxy's "upstream" stream).
	Upstream Direction = 1 << iota
	// Downstream is broker → client (toxiproxy's "downstream" stream).
	Downstream
	// Both is Upstream and Downstream.
	Both = Upstream | Downstream
)

func (d Direction) String() string {
	switch d {
	case Upstream:
		return "client→broker"
	case Downstream:
		return "broker→client"
	case Both:
		return "both"
	}
	return fmt.Sprintf("Direction(%d)", uint8(d))
}

// short is the compact form used in dumps.
func (d Direction) short() string {
	switch d {
	case Upstream:
		return "c→b"
	case Downstream:
		return "b→c"
	case Both:
		return "c↔b"
	}
	return "?"
}

func (d Direction) valid() bool { return d != 0 && d&^Both == 0 }

// each lists the single directions in d, upstream first.
func (d Direction) each() []Direction {
	var out []Direction
	for _, s := range []Direction{Upstream, Downstream} {
		if d&s != 0 {
			out = append(out, s)
		}
	}
	return out
}

// stream is toxiproxy's name for a single direction.
func (d Direction) stream() string {
	if d == Upstream {
		return "upstream"
	}
	return "downstream"
}

// index maps a single direction to 0 (upstream) or 1 (downstream).
func (d Direction) index() int {
	if d == Upstream {
		return 0
	}
	return 1
}
