package ledger

import (
	"bufio"
	"compress/flate"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
)

// OpenHistory returns a reader of the JSON lines r holds, plain or gzip
// compressed (as a report writes history.jsonl.gz); ReadJSONL and
// ReadOnline read either through it. A compressed stream that is corrupt or
// cut short fails with an error wrapping ErrHistory.
func OpenHistory(r io.Reader) (io.Reader, error) {
	br := bufio.NewReaderSize(r, 1<<16)
	magic, err := br.Peek(2)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("ledger: read history: %w", err)
	}
	if len(magic) < 2 || magic[0] != 0x1f || magic[1] != 0x8b {
		return br, nil
	}
	zr, err := gzip.NewReader(br)
	if err != nil {
		return nil, historyReadError(err)
	}
	return &gzipLines{zr: zr}, nil
}

// gzipLines reads a compressed history, telling corruption from failure.
type gzipLines struct{ zr *gzip.Reader }

func (g *gzipLines) Read(p []byte) (int, error) {
	n, err := g.zr.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		err = historyReadError(err)
	}
	return n, err
}

func historyReadError(err error) error {
	var corrupt flate.CorruptInputError
	if errors.Is(err, gzip.ErrHeader) || errors.Is(err, gzip.ErrChecksum) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.As(err, &corrupt) {
		return fmt.Errorf("%w: compressed: %v", ErrHistory, err)
	}
	return fmt.Errorf("ledger: read history: %w", err)
}

// WriteJSONLGzip writes the history as WriteJSONL does, gzip compressed.
func (l *Ledger) WriteJSONLGzip(w io.Writer) error {
	zw := gzip.NewWriter(w)
	if err := l.WriteJSONL(zw); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("ledger: write history: %w", err)
	}
	return nil
}
