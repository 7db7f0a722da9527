package ledger

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// A streaming ledger given the same calls as a recording one gives Check's verdict (the latency
// quantiles within the sketch's accuracy), and the history it wrote reads back to Check's verdict
// exactly, through ReadJSONL, and to the online one through ReadOnline.
func TestStreamingGivesCheckVerdict(t *testing.T) {
	var lines, untimed int
	for seed := range uint64(300) {
		want := randomHistory(rand.New(rand.NewPCG(seed, 5)))
		var hist bytes.Buffer
		var observed int
		s := NewStreaming(t0, StreamOptions{History: &hist, Horizon: time.Duration(math.MaxInt64),
			Observe: func(Event, time.Duration) { observed++ }})
		randomHistoryInto(rand.New(rand.NewPCG(seed, 5)), s)
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			wantRes := want.Check()
			sameVerdict(t, s.Check(), want.Check(), s.st.o.Untimed())
			untimed += s.st.o.Untimed()
			if err := s.Finish(); err != nil {
				t.Fatal(err)
			}
			if !errors.Is(s.Finish(), ErrFinished) {
				t.Fatal("Finish twice")
			}
			if n := strings.Count(hist.String(), "\n"); n != s.Len() || n != observed {
				t.Fatalf("%d lines written, %d observed, Len %d", n, observed, s.Len())
			}
			lines += s.Len()
			back, err := CheckJSONL(bytes.NewReader(hist.Bytes()))
			if err != nil {
				t.Fatal(err)
			}
			if g, w := resultJSON(t, back), resultJSON(t, wantRes); g != w {
				t.Fatalf("the streamed history checks to\n%s\nwant\n%s", g, firstDiff(g, w))
			}
			o, err := ReadOnline(bytes.NewReader(hist.Bytes()), math.MaxInt64)
			if err != nil {
				t.Fatal(err)
			}
			sameVerdict(t, o.Result(), want.Check(), o.Untimed())
		})
	}
	if lines < 10000 {
		t.Fatalf("weak histories: %d lines", lines)
	}
}

// After Finish, a streaming ledger records nothing, checks nothing and writes nothing, and a
// completion of an op it handed out after Finish is not a panic.
func TestStreamingAfterFinish(t *testing.T) {
	var hist bytes.Buffer
	l := NewStreaming(t0, StreamOptions{History: &hist})
	x := id("p", "t", 1)
	l.Complete(l.Invoke(x, ms(0)), OK, ms(1), nil)
	if err := l.Finish(); err != nil {
		t.Fatal(err)
	}
	n := hist.Len()
	op := l.Invoke(id("p", "t", 2), ms(2))
	l.Complete(op, OK, ms(3), nil)
	l.Deliver(Delivery{Subscriber: "s", Topic: "t", Payload: Encode(x, ms(0)), At: ms(4)})
	if r := l.Check(); hist.Len() != n || r.Attempted != 1 {
		t.Fatalf("recorded after Finish: %d bytes more, %s", hist.Len()-n, r.Summary())
	}
	if !l.Streaming() {
		t.Fatal("not streaming")
	}
	for ev := range l.Events() {
		t.Fatalf("a streaming ledger yielded %v", ev)
	}
}

// A history that cannot be written is reported by Finish, and the verdict still stands.
func TestStreamingWriteError(t *testing.T) {
	l := NewStreaming(t0, StreamOptions{History: failWriter{}})
	x := id("p", "t", 1)
	l.Complete(l.Invoke(x, ms(0)), OK, ms(1), nil)
	l.Deliver(Delivery{Subscriber: "s", Topic: "t", Payload: Encode(x, ms(0)), At: ms(2)})
	if r := l.Check(); r.Acknowledged != 1 || r.Delivered != 1 || !r.Valid() {
		t.Fatalf("verdict %s", r.Summary())
	}
	if err := l.Finish(); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("Finish: %v", err)
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

// The lines appendEventJSON writes decode as encoding/json's do, whatever the names hold.
func FuzzStreamLine(f *testing.F) {
	f.Add("soak-ab-c042", "soak/ab/c042", "soak-ab-c043", "", uint64(7), int64(123456789), 3, byte(1), true, false, 0)
	f.Add("p\"\\", "t/\u00e9/<&>", "s\x01", "timeout: \"x\"", uint64(math.MaxUint64), int64(-5), -1, byte(2), false, true, 4)
	f.Fuzz(func(t *testing.T, pub, topic, sub, errText string, seq uint64, at int64, op int, qos byte, dup, retain bool, k int) {
		kinds := []string{KindInvoke, KindOK, KindFail, KindInfo, KindDeliver, KindSubscribe, KindDrops}
		ev := Event{Index: max(op, 0) * 3, At: time.Duration(at), Kind: kinds[(k%len(kinds)+len(kinds))%len(kinds)],
			ID: ID{Publisher: pub, Topic: topic, Seq: seq}, Op: op, Subscriber: sub, QoS: qos % 3, Dup: dup, Retain: retain, Err: errText}
		if ev.Kind == KindSubscribe || ev.Kind == KindDrops {
			ev.ID, ev.Filter, ev.N = ID{}, topic, op
		}
		got, ok, err := decodeLine(appendEventJSON(nil, &ev))
		if err != nil || !ok {
			t.Fatalf("%+v: %v", ev, err)
		}
		want, _, err := decodeLine(mustJSON(t, ev))
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprintf("%#v", got) != fmt.Sprintf("%#v", want) {
			t.Fatalf("decoded\n%#v\nwant\n%#v", got, want)
		}
	})
}

func mustJSON(t *testing.T, ev Event) []byte {
	t.Helper()
	b, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
