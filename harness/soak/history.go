package soak

import (
	"bufio"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/mqttas/mqttas-go/harness/ledger"
	"github.com/mqttas/mqttas-go/harness/report"
)

// historyFile is the report's history as the run streams it: the ledger checks every line online
// and writes it here as it is recorded (gzip compressed unless Config.PlainHistory), and the plot's
// figures are taken on the way, so the run's memory is bounded by what is in flight, not by its
// length.
type historyFile struct {
	name   string // in the report's directory
	f      *os.File
	zw     *gzip.Writer // nil for a plain history
	bw     *bufio.Writer
	series *report.Series
	closed bool
}

func newHistoryFile(cfg Config) (*historyFile, error) {
	h := &historyFile{name: report.HistoryFile, series: report.NewSeries()}
	if cfg.PlainHistory {
		h.name = report.PlainHistoryFile
	}
	f, err := os.Create(filepath.Join(cfg.Out, h.name))
	if err != nil {
		return nil, fmt.Errorf("report directory: %w", err)
	}
	h.f = f
	var w io.Writer = f
	if !cfg.PlainHistory {
		h.zw = gzip.NewWriter(f)
		w = h.zw
	}
	h.bw = bufio.NewWriterSize(w, 256<<10)
	return h, nil
}

// ledger is the rig's ledger: streaming into h.
func (h *historyFile) ledger(start time.Time) *ledger.Ledger {
	return ledger.NewStreaming(start, ledger.StreamOptions{History: h.bw,
		Observe: func(ev ledger.Event, lat time.Duration) { h.series.Add(ev.At, ev.Kind, lat) }})
}

// close flushes and closes the file (once); call it after the ledger's Finish.
func (h *historyFile) close() error {
	if h.closed {
		return nil
	}
	h.closed = true
	err := h.bw.Flush()
	if h.zw != nil {
		err = errors.Join(err, h.zw.Close())
	}
	return errors.Join(err, h.f.Close())
}
