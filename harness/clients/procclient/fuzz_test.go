package procclient

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"
)

// FuzzDecodeEvent feeds arbitrary lines to the event decoder: it never
// panics, rejects with ErrProtocol, and what it accepts is a well-formed
// event that survives encoding and decoding again unchanged.
func FuzzDecodeEvent(f *testing.F) {
	for _, s := range []string{
		`{"ev":"result","id":1,"ok":true}`,
		`{"ev":"result","id":2,"ok":false,"error":"boom","not_sent":true}`,
		`{"ev":"result","id":3,"ok":true,"hello":{"protocol":1,"driver":"d","library":"l","version":"1","capabilities":["dup"]}}`,
		`{"ev":"message","topic":"a/b","payload":"aGk=","qos":1,"retain":true,"dup":true}`,
		`{"ev":"up","session_present":true}`,
		`{"ev":"down","reason":"EOF","reconnecting":false}`,
		`{"ev":"connect_failed","reason":"refused"}`,
		`{"ev":"log","level":"warn","msg":"x"}`,
		`{"ev":"reconnect"}`,
		`not json`, `{"ev":"up"} {}`, "{\"ev\":\"message\",\"topic\":\"\xff\",\"qos\":0}",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		ev, err := decodeEvent(line)
		if err != nil {
			if !errors.Is(err, ErrProtocol) {
				t.Fatalf("error %v does not wrap ErrProtocol", err)
			}
			return
		}
		switch ev.Ev {
		case evResult:
			if ev.ID == 0 || ev.OK == nil || (*ev.OK != (ev.Error == "")) {
				t.Fatalf("accepted a bad result: %+v", ev)
			}
		case evMessage:
			if ev.Topic == "" || ev.QoS == nil || *ev.QoS < 0 || *ev.QoS > 2 {
				t.Fatalf("accepted a bad message: %+v", ev)
			}
		case evDown, evConnectFailed:
			if ev.Reason == "" {
				t.Fatalf("accepted %s without a reason", ev.Ev)
			}
		case evUp, evReconnect, evLog:
		default:
			t.Fatalf("accepted unknown ev %q", ev.Ev)
		}
		again, err := json.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		ev2, err := decodeEvent(again)
		if err != nil {
			t.Fatalf("re-encoded event %s rejected: %v", again, err)
		}
		if !reflect.DeepEqual(ev, ev2) {
			t.Fatalf("round trip changed the event:\n%+v\n%+v", ev, ev2)
		}
	})
}
