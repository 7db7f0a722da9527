package broker

import (
	"context"
	"fmt"
	"net"
	"os"
)

// external is a broker someone else runs: only its address is known.
type external struct {
	addr string
}

func newExternal(ctx context.Context, opts Options) (*external, error) {
	addr := opts.Addr
	if addr == "" {
		addr = os.Getenv(EnvAddr)
	}
	if addr == "" {
		return nil, fmt.Errorf("broker: the %s backend needs an address: set %s=host:port or Options.Addr",
			KindExternal, EnvAddr)
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return nil, fmt.Errorf("broker: external address %q: %w", addr, err)
	}
	pctx, cancel := context.WithTimeout(ctx, opts.StartTimeout)
	defer cancel()
	if err := probe(pctx, addr, opts.ProbeTLS); !answers(err) {
		return nil, fmt.Errorf("broker: external broker at %s does not answer MQTT: %w", addr, err)
	}
	return &external{addr: addr}, nil
}

func (e *external) Kind() string { return KindExternal }
func (e *external) Addr() string { return e.addr }

func (e *external) unsupported(op string) error {
	return fmt.Errorf("external broker %s: %s: %w", e.addr, op, ErrUnsupported)
}

func (e *external) Start(context.Context) error   { return e.unsupported("Start") }
func (e *external) Stop(context.Context) error    { return e.unsupported("Stop") }
func (e *external) Restart(context.Context) error { return e.unsupported("Restart") }
func (e *external) Kill(context.Context) error    { return e.unsupported("Kill") }
func (e *external) Pause(context.Context) error   { return e.unsupported("Pause") }
func (e *external) Unpause(context.Context) error { return e.unsupported("Unpause") }
func (e *external) Logs(context.Context) (string, error) {
	return "", e.unsupported("Logs")
}

// Close does nothing: the broker is not ours.
func (e *external) Close(context.Context) error { return nil }
