package main

import (
	"fmt"
	"io"
	"os"
	"sync"
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
