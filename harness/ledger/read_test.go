package ledger

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
)

// rich records a history with every kind of line Check reads: outcomes with
// and without errors, names the payload format escapes, deliveries with
// flags, strays (junk, misrouted, binary), closed and open windows, drops,
// and subscribers first seen in an order that record order does not repeat.
func rich(tb testing.TB) *Ledger {
	r := &run{l: New(t0)}
	r.l.Subscribe("zed", "t/#", ms(0))
	r.l.Subscribe("obs", "#", ms(0))
	odd := id(`q"uote|%`, `back\slash/ünï<>&`, 1<<40)
	r.publish(odd, 1, OK, 2, nil)
	r.deliver("obs", odd, 3, false)
	for i := range 6 {
		x := id("p", "t/a", uint64(i))
		o := []Outcome{OK, OK, Fail, Info, Pending, OK}[i]
		var err error
		if o == Fail || o == Info {
			err = errors.New("broken: " + o.String())
		}
		r.publish(x, 10*i, o, 10*i+5, err)
		if i != 1 { // t/a#1 is lost to both
			r.deliver("obs", x, 10*i+7, false)
			r.deliver("zed", x, 10*i+8, i == 3)
		}
		if i == 0 {
			r.deliver("zed", x, 9, true)
			r.deliver("obs", x, 9, true)
		}
	}
	if !r.l.Unsubscribe("zed", "t/#", ms(45)) {
		tb.Fatal("no window to close")
	}
	r.l.Subscribe("zed", "t/#", ms(48))
	r.l.Deliver(Delivery{Subscriber: "obs", Topic: "x", Payload: []byte("junk\xff\x00"), At: ms(-5)})
	r.l.Deliver(Delivery{Subscriber: "obs", Topic: "elsewhere", Payload: Encode(odd, ms(0)), QoS: 2, Retain: true, At: ms(70)})
	r.deliver("obs", id("p", "t/a", 99), 71, false) // never published
	r.l.ExpectDrops("zed", 1)
	r.l.ExpectDrops("nobody", 3)
	return r.l
}

func resultJSON(t *testing.T, r Result) string {
	t.Helper()
	b, err := json.MarshalIndent(r, "", " ")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestReadJSONLChecksToTheSameResult(t *testing.T) {
	l := rich(t)
	var buf bytes.Buffer
	if err := l.WriteJSONL(&buf); err != nil {
		t.Fatal(err)
	}
	back, err := ReadJSONL(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	want, got := l.Check(), back.Check()
	if want.Valid() || len(want.Lost) == 0 || len(want.Unexpected) != 3 || len(want.Duplicated) < 2 || want.Dropped["zed"] != 1 {
		t.Fatalf("the fixture does not exercise the checker: %s", want.Summary())
	}
	if resultJSON(t, got) != resultJSON(t, want) {
		t.Fatalf("read back:\n%s\nwant:\n%s", resultJSON(t, got), resultJSON(t, want))
	}
	// The explanations survive too.
	for _, x := range want.Lost {
		if g, w := got.Context(x.ID, 3), want.Context(x.ID, 3); !slices.Equal(g, w) {
			t.Errorf("context of %v:\n%s\nwant\n%s", x.ID, strings.Join(g, "\n"), strings.Join(w, "\n"))
		}
	}
	// And the history itself: written again, it is the same bytes.
	var again bytes.Buffer
	if err := back.WriteJSONL(&again); err != nil {
		t.Fatal(err)
	}
	if again.String() != buf.String() {
		t.Fatalf("written again:\n%s\nfirst:\n%s", again.String(), buf.String())
	}
}

// A report's history sorts the lines by time and interleaves a timeline's.
func TestReadJSONLInAnyOrderSkippingOtherKinds(t *testing.T) {
	l := rich(t)
	var lines [][]byte
	for ev := range l.Events() {
		b, err := json.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, b)
	}
	at := func(b []byte) int64 {
		var x struct {
			At int64 `json:"at_ns"`
		}
		if err := json.Unmarshal(b, &x); err != nil {
			t.Fatal(err)
		}
		return x.At
	}
	lines = append(lines,
		[]byte(`{"at_ns":1000000,"kind":"fault-start","source":"link","fault":1,"name":"down"}`),
		[]byte(`{"at_ns":40000000,"kind":"up","source":"p","detail":"x"}`),
		[]byte(`   `))
	slices.SortStableFunc(lines, func(a, b []byte) int {
		if len(bytes.TrimSpace(a)) == 0 || len(bytes.TrimSpace(b)) == 0 {
			return 0
		}
		return cmp.Compare(at(a), at(b))
	})
	back, err := ReadJSONL(bytes.NewReader(bytes.Join(lines, []byte("\n")))) // no final newline
	if err != nil {
		t.Fatal(err)
	}
	if g, w := resultJSON(t, back.Check()), resultJSON(t, l.Check()); g != w {
		t.Fatalf("read back:\n%s\nwant:\n%s", g, w)
	}
}

func TestReadJSONLRejectsBadHistories(t *testing.T) {
	for _, c := range []struct{ name, history, want string }{
		{"not json", "{", "line 1"},
		{"no index", `{"at_ns":0,"kind":"invoke","id":{"publisher":"p","topic":"t","seq":1}}`, `without "i"`},
		{"no time", `{"i":0,"kind":"invoke","id":{"publisher":"p","topic":"t","seq":1}}`, `without "i" or "at_ns"`},
		{"index twice", `{"i":0,"at_ns":0,"kind":"invoke"}` + "\n" + `{"i":0,"at_ns":0,"kind":"invoke"}`, "two lines with index 0"},
		{"completion without invoke", `{"i":1,"at_ns":0,"kind":"ok","op":0}`, "no earlier invoke"},
		{"completion of a completion", `{"i":0,"at_ns":0,"kind":"invoke"}` + "\n" + `{"i":1,"at_ns":0,"kind":"ok"}` + "\n" + `{"i":2,"at_ns":0,"kind":"ok","op":1}`, "no earlier invoke"},
		{"completion naming another message", `{"i":0,"at_ns":0,"kind":"invoke","id":{"publisher":"p","topic":"t","seq":1}}` + "\n" + `{"i":1,"at_ns":0,"kind":"ok","id":{"publisher":"p","topic":"t","seq":2}}`, "an invoke of p t#1"},
		{"unsubscribe without subscribe", `{"i":0,"at_ns":0,"kind":"unsubscribe","op":3}`, "no earlier subscribe"},
		{"closed twice", `{"i":0,"at_ns":0,"kind":"subscribe","subscriber":"s","filter":"#"}` + "\n" + `{"i":1,"at_ns":0,"kind":"unsubscribe"}` + "\n" + `{"i":2,"at_ns":0,"kind":"unsubscribe"}`, "closed twice"},
		{"qos 3", `{"i":0,"at_ns":0,"kind":"deliver","qos":3}`, "qos 3"},
		{"negative drops", `{"i":0,"at_ns":0,"kind":"drops","subscriber":"s","n":-1}`, "-1 drops"},
	} {
		_, err := ReadJSONL(strings.NewReader(c.history))
		if !errors.Is(err, ErrHistory) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want ErrHistory with %q", c.name, err, c.want)
		}
	}
}

func FuzzReadJSONL(f *testing.F) {
	for _, l := range []*Ledger{rich(f), New(t0)} {
		var buf bytes.Buffer
		if err := l.WriteJSONL(&buf); err != nil {
			f.Fatal(err)
		}
		f.Add(buf.Bytes())
	}
	f.Add([]byte(`{"i":0,"at_ns":-9,"kind":"unexpected","payload":"AAE=","id":{"publisher":"","topic":"","seq":0}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := ReadJSONL(bytes.NewReader(b))
		if err != nil {
			if !errors.Is(err, ErrHistory) {
				t.Fatalf("error not ErrHistory: %v", err)
			}
			return
		}
		// Whatever reads is a history: written and read again, it checks the
		// same and writes the same.
		var first, second bytes.Buffer
		if err := l.WriteJSONL(&first); err != nil {
			t.Fatal(err)
		}
		back, err := ReadJSONL(bytes.NewReader(first.Bytes()))
		if err != nil {
			t.Fatalf("reading what WriteJSONL wrote: %v\n%s", err, first.String())
		}
		if g, w := resultJSON(t, back.Check()), resultJSON(t, l.Check()); g != w {
			t.Fatalf("checks differently once written:\n%s\nwant\n%s", g, w)
		}
		if err := back.WriteJSONL(&second); err != nil {
			t.Fatal(err)
		}
		if second.String() != first.String() {
			t.Fatalf("writes differently once read:\n%s\nfirst\n%s", second.String(), first.String())
		}
	})
}
