package ledger

import (
	"bytes"
	"compress/gzip"
	"errors"
	"math"
	"os"
	"path/filepath"
	"testing"
)

func gzipped(tb testing.TB, b []byte) []byte {
	tb.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		tb.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

func TestCompressedHistoryReadsAsPlain(t *testing.T) {
	l := rich(t)
	var plain, packed bytes.Buffer
	if err := l.WriteJSONL(&plain); err != nil {
		t.Fatal(err)
	}
	if err := l.WriteJSONLGzip(&packed); err != nil {
		t.Fatal(err)
	}
	if packed.Len() >= plain.Len() || !bytes.Equal(packed.Bytes()[:2], []byte{0x1f, 0x8b}) {
		t.Fatalf("gzip history: %d bytes, plain %d", packed.Len(), plain.Len())
	}
	want := resultJSON(t, l.Check())
	back, err := ReadJSONL(bytes.NewReader(packed.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if got := resultJSON(t, back.Check()); got != want {
		t.Fatalf("compressed history checks to\n%s\nwant\n%s", got, want)
	}
	o, err := ReadOnline(bytes.NewReader(packed.Bytes()), math.MaxInt64)
	if err != nil {
		t.Fatal(err)
	}
	sameVerdict(t, o.Result(), l.Check(), 0)

	// The recorded histories, compressed, check to their verdicts.
	files, _ := filepath.Glob(filepath.Join("testdata", "*.history.jsonl"))
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		a, err := CheckJSONL(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		z, err := CheckJSONL(bytes.NewReader(gzipped(t, b)))
		if err != nil {
			t.Fatal(err)
		}
		if resultJSON(t, a) != resultJSON(t, z) || a.Valid() {
			t.Fatalf("%s checks differently compressed: %s, plain %s", name, z.Summary(), a.Summary())
		}
	}
}

func TestCorruptCompressedHistoryIsBad(t *testing.T) {
	var plain bytes.Buffer
	if err := rich(t).WriteJSONL(&plain); err != nil {
		t.Fatal(err)
	}
	z := gzipped(t, plain.Bytes())
	flipped := bytes.Clone(z)
	flipped[len(flipped)/2] ^= 0xff
	for name, b := range map[string][]byte{
		"cut short":   z[:len(z)/2],
		"flipped":     flipped,
		"bad trailer": append(bytes.Clone(z[:len(z)-4]), 0, 0, 0, 0),
		"header only": z[:5],
	} {
		if _, err := ReadJSONL(bytes.NewReader(b)); !errors.Is(err, ErrHistory) {
			t.Errorf("%s: ReadJSONL: %v, want ErrHistory", name, err)
		}
		if _, err := ReadOnline(bytes.NewReader(b), 0); !errors.Is(err, ErrHistory) {
			t.Errorf("%s: ReadOnline: %v, want ErrHistory", name, err)
		}
	}
}

// FuzzReadOnline: any input reads to a verdict or fails with ErrHistory, and
// a plain one reads the same compressed.
func FuzzReadOnline(f *testing.F) {
	for _, l := range []*Ledger{rich(f), New(t0)} {
		var buf bytes.Buffer
		if err := l.WriteJSONL(&buf); err != nil {
			f.Fatal(err)
		}
		f.Add(buf.Bytes())
		f.Add(gzipped(f, buf.Bytes()))
	}
	f.Add([]byte(`{"i":1,"at_ns":5,"kind":"ok","op":0}` + "\n" + `{"i":0,"at_ns":1,"kind":"invoke","id":{"publisher":"p","topic":"t","seq":1}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		o, err := ReadOnline(bytes.NewReader(b), 0)
		if err != nil {
			if !errors.Is(err, ErrHistory) {
				t.Fatalf("error not ErrHistory: %v", err)
			}
			return
		}
		if bytes.HasPrefix(b, []byte{0x1f, 0x8b}) {
			return // compressed already
		}
		want := resultJSON(t, o.Result())
		z, err := ReadOnline(bytes.NewReader(gzipped(t, b)), 0)
		if err != nil {
			t.Fatalf("reads plain, not compressed: %v", err)
		}
		if got := resultJSON(t, z.Result()); got != want {
			t.Fatalf("compressed:\n%s\nplain:\n%s", got, want)
		}
	})
}
