package timeline

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mqttas/mqttas-go/harness/clients"
)

var t0 = time.Unix(1_800_000_000, 0)

func ms(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }

func sample(t *testing.T) *Timeline {
	t.Helper()
	tl := New(t0)
	tl.Record(ms(0), "paho", Up, "")
	lat := tl.BeginFault(ms(100), "link", "latency", map[string]any{"latency": 200, "stream": "downstream"})
	tl.Record(ms(150), "paho", Down, "EOF")
	tl.Record(ms(160), "paho", Reconnect, "")
	reset := tl.BeginFault(ms(170), "link", "reset_peer", nil)
	if err := tl.EndFault(ms(300), lat, "healed"); err != nil {
		t.Fatal(err)
	}
	tl.Record(ms(310), "mqttas", Resend, "pid 7")
	tl.Record(ms(320), "paho", Up, "")
	_ = reset // left open
	return tl
}

func TestFaultWindows(t *testing.T) {
	tl := sample(t)
	got := tl.Faults()
	want := []Window{
		{Fault: 1, Name: "latency", Source: "link", Params: map[string]any{"latency": 200, "stream": "downstream"}, Start: 100 * time.Millisecond, End: 300 * time.Millisecond},
		{Fault: 2, Name: "reset_peer", Source: "link", Start: 170 * time.Millisecond, End: 320 * time.Millisecond, Open: true},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("Faults() = %+v\nwant %+v", got, want)
	}
	if !got[0].Contains(100*time.Millisecond) || got[0].Contains(300*time.Millisecond) || got[0].Contains(99*time.Millisecond) {
		t.Fatal("Window.Contains is not [Start, End)")
	}
}

func TestEndFaultErrors(t *testing.T) {
	tl := New(t0)
	f := tl.BeginFault(ms(1), "link", "down", nil)
	if err := tl.EndFault(ms(2), f, ""); err != nil {
		t.Fatal(err)
	}
	for _, id := range []int{f, 99} {
		if err := tl.EndFault(ms(3), id, ""); !errors.Is(err, ErrUnknownFault) {
			t.Errorf("EndFault(%d) = %v, want ErrUnknownFault", id, err)
		}
	}
}

func TestEventsAndSources(t *testing.T) {
	tl := sample(t)
	var kinds []Kind
	for _, e := range tl.Events("paho") {
		kinds = append(kinds, e.Kind)
	}
	if !slices.Equal(kinds, []Kind{Up, Down, Reconnect, Up}) {
		t.Fatalf("paho events = %v", kinds)
	}
	if got := tl.Events("link"); len(got) != 0 {
		t.Fatalf("fault entries leaked into Events: %v", got)
	}
	if got := tl.Sources(); !slices.Equal(got, []string{"link", "mqttas", "paho"}) {
		t.Fatalf("Sources() = %v", got)
	}
	between := tl.Between(150*time.Millisecond, 300*time.Millisecond)
	if len(between) != 3 || between[0].Kind != Down || between[2].Kind != FaultStart {
		t.Fatalf("Between = %v", between)
	}
}

func TestRender(t *testing.T) {
	tl := New(t0)
	tl.Record(ms(1500), "paho", Down, "EOF")
	tl.BeginFault(ms(1200), "link", "latency", map[string]any{"stream": "downstream", "latency": 200})
	want := "+1.200000s  link      fault-start    #1 latency latency=200 stream=downstream\n" +
		"+1.500000s  paho      down           EOF\n"
	if got := tl.String(); got != want {
		t.Fatalf("String():\n%s\nwant:\n%s", got, want)
	}
}

func TestJSONLRoundTrip(t *testing.T) {
	tl := sample(t)
	var b strings.Builder
	if err := tl.WriteJSONL(&b); err != nil {
		t.Fatal(err)
	}
	first := strings.SplitN(b.String(), "\n", 2)[0]
	if first != `{"at_ns":0,"kind":"up","source":"paho"}` {
		t.Fatalf("first line = %s", first)
	}
	got, err := ReadJSONL(strings.NewReader(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	// JSON numbers decode as float64; everything else survives as is.
	want := tl.Entries()
	want[1].Params = map[string]any{"latency": float64(200), "stream": "downstream"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("round trip:\n%v\nwant\n%v", got, want)
	}
	if fmt.Sprint(Faults(got)) != fmt.Sprint(Faults(want)) {
		t.Fatal("Faults differ after a round trip")
	}
	if _, err := ReadJSONL(strings.NewReader(b.String() + "{bad")); err == nil {
		t.Fatal("ReadJSONL accepted a broken line")
	}
}

func TestWriteFile(t *testing.T) {
	tl := sample(t)
	var want strings.Builder
	if err := tl.WriteJSONL(&want); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "timeline.jsonl")
	if err := os.WriteFile(path, []byte("older, longer content that must not survive\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := tl.WriteFile(path); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(path); err != nil || string(got) != want.String() {
		t.Fatalf("WriteFile wrote %q, %v; want %q", got, err, want.String())
	}
	missing := filepath.Join(t.TempDir(), "no-such-dir", "timeline.jsonl")
	if err := tl.WriteFile(missing); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("WriteFile into a missing directory: %v, want an error wrapping os.ErrNotExist", err)
	}
}

// TestConcurrentRecording is for the race detector.
func TestConcurrentRecording(t *testing.T) {
	tl := New(time.Now())
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			for range 200 {
				f := tl.BeginFault(time.Now(), "link", "latency", nil)
				tl.Record(time.Now(), fmt.Sprint("c", i), Up, "")
				if err := tl.EndFault(time.Now(), f, ""); err != nil {
					t.Error(err)
					return
				}
				_ = tl.Faults()
			}
		})
	}
	wg.Wait()
	if n := len(tl.Entries()); n != 4*200*3 {
		t.Fatalf("%d entries, want %d", n, 4*200*3)
	}
	for _, w := range tl.Faults() {
		if w.Open || w.End < w.Start {
			t.Fatalf("bad window %+v", w)
		}
	}
}

// TestClientEventKindsMatch guards the promise that client events convert to
// timeline kinds with a plain conversion.
func TestClientEventKindsMatch(t *testing.T) {
	pairs := map[clients.EventKind]Kind{
		clients.EventUp: Up, clients.EventDown: Down, clients.EventReconnect: Reconnect,
		clients.EventConnectFailed: ConnectFailed, clients.EventResend: Resend,
		clients.EventPIDRenew: PIDRenew, clients.EventOutage: Outage,
	}
	for ck, tk := range pairs {
		if Kind(ck) != tk {
			t.Errorf("clients kind %q is timeline kind %q", ck, tk)
		}
	}
}
