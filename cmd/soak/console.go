package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"time"
)

// console serialises stderr between the progress line and everything else. On a terminal the progress
// line is rewritten in place (\r) and cleared before any other output; elsewhere it is a plain line.
type console struct {
	mu      sync.Mutex
	w       io.Writer
	tty     bool
	pending bool // a progress line is on screen, not yet ended by a newline
}

func newConsole(w io.Writer) *console {
	c := &console{w: w}
	if f, ok := w.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			c.tty = true
		}
	}
	return c
}

// Write writes p below (after clearing) the progress line, for loggers.
func (c *console) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.clear()
	return c.w.Write(p)
}

func (c *console) clear() {
	if c.pending {
		_, _ = io.WriteString(c.w, "\r\x1b[K")
		c.pending = false
	}
}

// Printf prints a line of its own.
func (c *console) Printf(format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.clear()
	fmt.Fprintf(c.w, format+"\n", args...)
}

// Progress shows line: in place on a terminal, else as a line of its own.
func (c *console) Progress(line string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.tty {
		_, _ = io.WriteString(c.w, "\r\x1b[K"+line)
		c.pending = true
		return
	}
	_, _ = io.WriteString(c.w, line+"\n")
}

// Done ends a progress line left on screen.
func (c *console) Done() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pending {
		_, _ = io.WriteString(c.w, "\n")
		c.pending = false
	}
}

var mosquittoVersion = regexp.MustCompile(`mosquitto version (\S+)`)

// versions names what the run was made of: Go, the code under test, the broker and the harness's parts.
func versions(ctx context.Context, brokerKind, brokerLogs string) map[string]string {
	v := map[string]string{"go": runtime.Version(), "broker": brokerKind, "mqttas": "(devel)"}
	if m := mosquittoVersion.FindStringSubmatch(brokerLogs); m != nil {
		v["mosquitto"] = m[1]
	} else {
		v["mosquitto"] = "unknown"
	}
	deps := map[string]string{
		"github.com/Shopify/toxiproxy/v2":             "toxiproxy",
		"github.com/eclipse/paho.mqtt.golang":         "paho",
		"github.com/testcontainers/testcontainers-go": "testcontainers",
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Version != "" {
			v["mqttas"] = bi.Main.Version
		}
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				v["mqttas"] = s.Value
			}
		}
		for _, d := range bi.Deps {
			if name, ok := deps[d.Path]; ok {
				v[name] = d.Version
			}
		}
	}
	if v["mqttas"] == "(devel)" {
		// go run builds without VCS stamps here (-buildvcs=false); ask git, briefly.
		gctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		if out, err := exec.CommandContext(gctx, "git", "rev-parse", "--short=12", "HEAD").Output(); err == nil {
			rev := strings.TrimSpace(string(out))
			if st, err := exec.CommandContext(gctx, "git", "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(st) > 0 {
				rev += "+dirty"
			}
			v["mqttas"] = rev
		}
	}
	return v
}
