package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/mqttas/mqttas-go/mqttas"
)

// lockedWriter serialises writes: the client's logger, its callbacks and the command share stderr.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// reporter tells the user on stderr what the link did: when it went down and why, when it came back, and
// what had to be re-sent. Nothing it reports is an error of the command: outages are ridden through.
type reporter struct {
	name  string // "pub" or "sub"
	w     io.Writer
	clean bool // every connection starts a clean session

	mu     sync.Mutex
	client *mqttas.Client
	downAt time.Time    // zero while up
	last   mqttas.Stats // at the last report
}

func (r *reporter) printf(format string, args ...any) {
	line := fmt.Sprintf("mqttas %s: %s %s\n", r.name, time.Now().Format("15:04:05.000"), fmt.Sprintf(format, args...))
	_, _ = io.WriteString(r.w, line)
}

// attach sets the client whose Stats the reports quote. Call it before Connect.
func (r *reporter) attach(c *mqttas.Client) {
	r.mu.Lock()
	r.client = c
	r.mu.Unlock()
}

// linkChange is the client's OnLinkChange. The client calls it in order, on one goroutine at a time.
func (r *reporter) linkChange(up bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.client == nil {
		return
	}
	st := r.client.Stats()
	defer func() { r.last = st }()
	if !up {
		r.downAt = time.Now()
		msg := fmt.Sprintf("link down (outage %d)", st.Outages)
		if err := r.client.LastError(); err != nil {
			msg += ": " + err.Error()
		}
		if d := st.Repubs - r.last.Repubs; d > 0 {
			msg += fmt.Sprintf(" [after %d unacknowledged DUP re-send%s]", d, plural(d))
		}
		r.printf("%s; reconnecting", msg)
		return
	}
	if r.downAt.IsZero() {
		return // the first connection is not news
	}
	msg := fmt.Sprintf("link up again after %v (reconnect %d", time.Since(r.downAt).Round(time.Millisecond), st.Reconnects)
	if d := st.FailedAttempts - r.last.FailedAttempts; d > 0 {
		msg += fmt.Sprintf(", %d failed attempt%s", d, plural(d))
	}
	switch {
	case r.clean:
		msg += ", clean session)"
	case st.SessionPresent:
		msg += ", the broker kept the session)"
	default:
		msg += ", the broker had lost the session)"
	}
	r.downAt = time.Time{}
	r.printf("%s", msg)
}

// summary reports the totals when anything happened worth reporting.
func (r *reporter) summary(done string, always bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.client == nil {
		return
	}
	st := r.client.Stats()
	if st.Outages == 0 && !always {
		return
	}
	r.printf("%s; %d outage%s, %d reconnect%s (%d failed attempt%s), %d DUP re-send%s, %d renewal%s",
		done, st.Outages, plural(st.Outages), st.Reconnects, plural(st.Reconnects), st.FailedAttempts,
		plural(st.FailedAttempts), st.Repubs, plural(st.Repubs), st.Renewals, plural(st.Renewals))
}

func plural[T ~int | ~uint64](n T) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// warnHandler is a slog.Handler for the client's logger that prints the client's warnings as reports.
type warnHandler struct {
	r *reporter
}

func (h warnHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }

func (h warnHandler) Handle(_ context.Context, rec slog.Record) error {
	{
		var b strings.Builder
		b.WriteString(strings.TrimPrefix(rec.Message, "mqttas: "))
		rec.Attrs(func(a slog.Attr) bool {
			fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
			return true
		})
		h.r.printf("warning: %s", b.String())
	}
	return nil
}

func (h warnHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h warnHandler) WithGroup(string) slog.Handler      { return h }

// logger returns the client's logger: its warnings as reports, or -d's debug output when set.
func (r *reporter) logger(debug *slog.Logger) *slog.Logger {
	if debug == nil {
		return slog.New(warnHandler{r: r})
	}
	return debug
}
