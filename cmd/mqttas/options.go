package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/mqttas/mqttas-go/mqttas"
)

// Exit codes.
const (
	exitOK          = 0 // the planned work is done
	exitUsage       = 1 // bad flags or arguments, or a local error (unreadable file, failed output)
	exitConnect     = 2 // the first connection, or the first subscription, was refused or failed
	exitInterrupted = 3 // SIGINT or SIGTERM arrived before the planned work was done (sub without -C: never)
)

// usageError is a command line mistake: run prints it with a hint and exits 1.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// options are the flags pub and sub share.
type options struct {
	host      string
	port      int
	id        string
	keepalive int
	user      string
	password  string
	noClean   bool // -c
	cleanInit bool // --clean-init
	qos       int
	debug     bool

	cafile, cert, key string
	insecure          bool
	osCerts           bool

	pingInterval time.Duration
	responseTime time.Duration
	maxRepubs    int
	reconnectMax time.Duration
}

// register adds the common flags to fs, with mosquitto's letters and defaults.
func (o *options) register(fs *flag.FlagSet) {
	fs.StringVar(&o.host, "h", "localhost", "broker `host`")
	fs.IntVar(&o.port, "p", 0, "broker `port` (default 1883, or 8883 with TLS)")
	fs.StringVar(&o.id, "i", "", "client `id` (default: a random one)")
	fs.IntVar(&o.keepalive, "k", 60, "keepalive in `seconds` (0 disables the broker's timer)")
	fs.StringVar(&o.user, "u", "", "`username`")
	fs.StringVar(&o.password, "P", "", "`password` (sent only with -u)")
	fs.BoolVar(&o.noClean, "c", false, "no clean session: the broker keeps subscriptions and queues qos 1 messages\nwhile the client is away (needs -i)")
	fs.IntVar(&o.qos, "q", 0, "`qos` 0 or 1 (qos 2 is not supported)")
	fs.BoolVar(&o.debug, "d", false, "debug output on stderr")
	fs.StringVar(&o.cafile, "cafile", "", "PEM `file` of CA certificates: connect with TLS and verify the broker with them")
	fs.StringVar(&o.cert, "cert", "", "PEM client certificate `file` for TLS (with --key)")
	fs.StringVar(&o.key, "key", "", "PEM client private key `file` for TLS (with --cert)")
	fs.BoolVar(&o.insecure, "insecure", false, "TLS: do not check that the broker's certificate names the host\n(the certificate chain is still verified)")
	fs.BoolVar(&o.osCerts, "tls-use-os-certs", false, "connect with TLS and verify the broker with the system's CA certificates")
	fs.Var(durationValue{&o.pingInterval}, "ping-interval", "ping at least every `duration` (default keepalive/4); the broker is declared\ndead after 4 intervals of silence")
	o.responseTime = 10 * time.Second // mqttas's default
	fs.Var(durationValue{&o.responseTime}, "response-time", "wait this `duration` for any answer from the broker before re-sending or\nreconnecting")
	fs.IntVar(&o.maxRepubs, "max-repubs", 4, "re-send an unacknowledged qos 1 publication with DUP up to `n` times, then\ndeclare the link dead and re-send it after reconnecting")
	fs.BoolVar(&o.cleanInit, "clean-init", false, "with -c: discard any old session at start-up, then keep the session\nacross outages")
	fs.Var(durationValue{&o.reconnectMax}, "reconnect-max", "wait at most this `duration` between reconnection attempts (default 1s)")
}

// check validates the common flags.
func (o *options) check() error {
	if o.host == "" {
		return usagef("-h: the broker host is empty")
	}
	if o.port < 0 || o.port > 65535 {
		return usagef("-p %d: the port must be 1-65535", o.port)
	}
	if o.qos != 0 && o.qos != 1 {
		return usagef("-q %d: qos must be 0 or 1 (qos 2 is not supported)", o.qos)
	}
	if o.keepalive < 0 || o.keepalive > 65535 {
		return usagef("-k %d: the keepalive must be 0-65535 seconds", o.keepalive)
	}
	if o.noClean && o.id == "" {
		return usagef("-c needs a client id (-i): a random id would start a new session on every run")
	}
	if o.cleanInit && !o.noClean {
		return usagef("--clean-init only applies with -c (without -c every connection is clean)")
	}
	if o.maxRepubs < 0 {
		return usagef("--max-repubs %d: must not be negative", o.maxRepubs)
	}
	if o.responseTime <= 0 {
		return usagef("--response-time %v: must be positive", o.responseTime)
	}
	if o.pingInterval < 0 || o.reconnectMax < 0 {
		return usagef("--ping-interval and --reconnect-max must not be negative")
	}
	if (o.cert == "") != (o.key == "") {
		return usagef("--cert and --key go together")
	}
	if o.user == "" && o.password != "" {
		return usagef("-P needs -u: MQTT 3.1.1 sends no password without a user name")
	}
	return nil
}

// config builds the client configuration. The callbacks are the caller's to fill in.
func (o *options) config(debug io.Writer) (mqttas.Config, error) {
	cfg := mqttas.Config{
		Server:        o.host,
		Port:          o.port,
		ClientID:      o.id,
		User:          o.user,
		Password:      o.password,
		KeepAlive:     time.Duration(o.keepalive) * time.Second,
		PingInterval:  o.pingInterval,
		ResponseTime:  o.responseTime,
		MaxRepubs:     o.maxRepubs,
		KeepSession:   o.noClean,
		ResumeSession: o.noClean && !o.cleanInit,
		ReconnectMax:  o.reconnectMax,
	}
	// mqttas reads 0 as its default; -k 0 and --max-repubs 0 mean none.
	if o.keepalive == 0 {
		cfg.KeepAlive = -1
	}
	if o.maxRepubs == 0 {
		cfg.MaxRepubs = -1
	}
	tc, err := o.tlsConfig()
	if err != nil {
		return cfg, err
	}
	cfg.TLS = tc
	if o.debug {
		cfg.Logger = slog.New(slog.NewTextHandler(debug, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return cfg, nil
}

// tlsConfig returns nil for plain TCP, else the TLS configuration the flags describe.
func (o *options) tlsConfig() (*tls.Config, error) {
	if o.cafile == "" && o.cert == "" && !o.insecure && !o.osCerts {
		return nil, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if o.cafile != "" {
		pem, err := os.ReadFile(o.cafile)
		if err != nil {
			return nil, usagef("--cafile: %v", err)
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(pem) {
			return nil, usagef("--cafile %s: no PEM certificate in it", o.cafile)
		}
	}
	if o.cert != "" {
		kp, err := tls.LoadX509KeyPair(o.cert, o.key)
		if err != nil {
			return nil, usagef("--cert/--key: %v", err)
		}
		tc.Certificates = []tls.Certificate{kp}
	}
	if o.insecure {
		// Like mosquitto's --insecure: verify the chain, not the host name.
		// The client sends no SNI when InsecureSkipVerify is set unless ServerName is: set it (Go leaves it
		// out for an IP address).
		roots := tc.RootCAs
		tc.InsecureSkipVerify = true
		tc.ServerName = o.host
		tc.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("the broker sent no certificate")
			}
			opts := x509.VerifyOptions{Roots: roots, Intermediates: x509.NewCertPool()}
			for _, c := range cs.PeerCertificates[1:] {
				opts.Intermediates.AddCert(c)
			}
			_, err := cs.PeerCertificates[0].Verify(opts)
			return err
		}
	}
	return tc, nil
}

// durationValue is a flag that takes a Go duration ("250ms", "2s") or a number of seconds ("0.5").
type durationValue struct{ d *time.Duration }

func (v durationValue) String() string {
	if v.d == nil || *v.d == 0 {
		return ""
	}
	return v.d.String()
}

func (v durationValue) Set(s string) error {
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		*v.d = time.Duration(f * float64(time.Second))
	} else if *v.d, err = time.ParseDuration(s); err != nil {
		return fmt.Errorf("%q is not a duration (say 500ms, 2s or 1.5)", s)
	}
	if *v.d < 0 {
		return fmt.Errorf("%q is negative", s)
	}
	return nil
}

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string { return strings.Join(*l, ",") }

func (l *stringList) Set(s string) error {
	*l = append(*l, s)
	return nil
}

// printUsage writes fs's flags mosquitto-style: one-letter flags with "-", long ones with "--".
func printUsage(w io.Writer, fs *flag.FlagSet, synopsis string) {
	var b strings.Builder
	b.WriteString(synopsis)
	b.WriteString("\n\nFlags:\n")
	fs.VisitAll(func(f *flag.Flag) {
		dash := "--"
		if len(f.Name) == 1 {
			dash = "-"
		}
		name, usage := flag.UnquoteUsage(f)
		fmt.Fprintf(&b, "  %s%s", dash, f.Name)
		if name != "" {
			fmt.Fprintf(&b, " %s", name)
		}
		usage = strings.ReplaceAll(usage, "\n", "\n      ")
		fmt.Fprintf(&b, "\n      %s", usage)
		if f.DefValue != "" && f.DefValue != "0" && f.DefValue != "false" {
			fmt.Fprintf(&b, " (default %s)", f.DefValue)
		}
		b.WriteString("\n")
	})
	b.WriteString(exitCodesHelp)
	_, _ = io.WriteString(w, b.String())
}

const exitCodesHelp = `
Exit codes: 0 done; 1 usage error; 2 the first connection (or subscription) was refused or failed;
3 interrupted by SIGINT/SIGTERM before the work was done (a second signal abandons the work in flight);
sub without -C has no planned end: a signal stops it with 0, as it does mosquitto_sub.
Outages after the first connection are ridden through and reported on stderr.
`
