package proxy

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/mqttas/mqttas-go/harness/link"
	"github.com/mqttas/mqttas-go/harness/link/mqttframe"
	"github.com/mqttas/mqttas-go/harness/timeline"
)

// WireRecord is one line of the wire log: a control packet the proxy saw, or a connection event.
type WireRecord struct {
	Seq         uint64    `json:"seq"`
	Time        time.Time `json:"time"`
	T           float64   `json:"t"` // seconds since the proxy started
	Conn        int       `json:"conn"`
	Client      string    `json:"client,omitempty"` // the connection's CONNECT client id
	Dir         string    `json:"dir"`              // c→b, b→c; c↔b for open and reset
	Event       string    `json:"event"`            // packet, open, eof, reset, unframed
	Type        string    `json:"type,omitempty"`
	ID          *uint16   `json:"id,omitempty"`
	DUP         bool      `json:"dup,omitempty"`
	QoS         byte      `json:"qos,omitempty"`
	Retain      bool      `json:"retain,omitempty"`
	Topic       string    `json:"topic,omitempty"`
	Size        int       `json:"size,omitempty"`
	PayloadSize int       `json:"payload_size,omitempty"`
	Code        *byte     `json:"code,omitempty"` // CONNACK, SUBACK
	Fate        string    `json:"fate,omitempty"` // dropped, delayed
	DelayMS     int64     `json:"delay_ms,omitempty"`
	Note        string    `json:"note,omitempty"`
}

// wireConn is what the wire log knows of one connection.
type wireConn struct {
	client string
	up     bool
}

// wireTopic counts what devices published on a topic, on the wire.
type wireTopic struct {
	publishes, resends int
}

// wireLog copies the tap's records to the wire log, and turns each device's connections into up and
// down events on the timeline (a device's id is its CONNECT client id).
type wireLog struct {
	tap   *link.Tap
	tl    *timeline.Timeline
	start time.Time

	mu      sync.Mutex
	f       *os.File
	w       *bufio.Writer
	enc     *json.Encoder
	err     error
	last    uint64
	missed  uint64
	conns   map[int]*wireConn
	devs    []string
	topics  map[string]*wireTopic
	packets int
	closed  bool
}

func newWireLog(f *os.File, tap *link.Tap, tl *timeline.Timeline, start time.Time) *wireLog {
	w := bufio.NewWriter(f)
	return &wireLog{tap: tap, tl: tl, start: start, f: f, w: w, enc: json.NewEncoder(w),
		conns: map[int]*wireConn{}, topics: map[string]*wireTopic{}}
}

func dirName(d link.Direction) string {
	switch d {
	case link.Upstream:
		return "c→b"
	case link.Downstream:
		return "b→c"
	}
	return "c↔b"
}

// poll writes the records made since the last poll.
func (wl *wireLog) poll() {
	wl.mu.Lock()
	defer wl.mu.Unlock()
	if wl.closed {
		return
	}
	for _, p := range wl.tap.Packets(link.AfterSeq(wl.last)) {
		if p.Seq > wl.last+1 {
			wl.missed += p.Seq - wl.last - 1 // the tap's ring wrapped between two polls
		}
		wl.last = p.Seq
		wl.add(p)
	}
	if wl.err == nil {
		wl.err = wl.w.Flush()
	}
}

func (wl *wireLog) add(p link.Packet) {
	c := wl.conns[p.Conn]
	if c == nil {
		c = &wireConn{}
		wl.conns[p.Conn] = c
	}
	rec := WireRecord{Seq: p.Seq, Time: p.Time, T: p.Time.Sub(wl.start).Seconds(), Conn: p.Conn, Dir: dirName(p.Dir),
		Event: p.Event.String(), Note: p.Note}
	down := func(why string) {
		if c.up {
			c.up = false
			wl.tl.Record(p.Time, c.client, timeline.Down, fmt.Sprintf("connection #%d: %s", p.Conn, why))
		}
	}
	switch p.Event {
	case link.EventEOF:
		down("closed " + dirName(p.Dir))
	case link.EventReset:
		down("reset by the proxy")
	case link.EventPacket:
		wl.packets++
		rec.Type, rec.DUP, rec.QoS, rec.Retain, rec.Topic = p.Type.String(), p.DUP, p.QoS, p.Retain, p.Topic
		rec.Size, rec.PayloadSize = p.Size, p.PayloadSize
		if p.HasID {
			id := p.ID
			rec.ID = &id
		}
		switch p.Fate {
		case link.Dropped:
			rec.Fate = "dropped"
		case link.Delayed:
			rec.Fate, rec.DelayMS = "delayed", p.Delay.Milliseconds()
		}
		switch {
		case p.Type == mqttframe.CONNECT && p.Dir == link.Upstream:
			c.client = p.ClientID
			if c.client == "" {
				c.client = fmt.Sprintf("conn-%d", p.Conn)
			}
			if !slices.Contains(wl.devs, c.client) {
				wl.devs = append(wl.devs, c.client)
			}
			for n, o := range wl.conns {
				if n != p.Conn && o.client == c.client && o.up {
					o.up = false
					wl.tl.Record(p.Time, o.client, timeline.Down, fmt.Sprintf("connection #%d abandoned: CONNECT on #%d", n, p.Conn))
				}
			}
			wl.tl.Record(p.Time, c.client, timeline.Reconnect, fmt.Sprintf("CONNECT on connection #%d", p.Conn))
		case p.Type == mqttframe.CONNACK && p.Dir == link.Downstream:
			code := p.Code
			rec.Code = &code
			if p.Code == 0 && p.Fate != link.Dropped && c.client != "" {
				c.up = true
				wl.tl.Record(p.Time, c.client, timeline.Up, fmt.Sprintf("connection #%d, session present %v", p.Conn, p.SessionPresent))
			}
		case p.Type == mqttframe.DISCONNECT && p.Dir == link.Upstream:
			// A clean end, not an outage: the device said goodbye.
			if c.up {
				c.up = false
				wl.tl.Record(p.Time, c.client, timeline.Note, fmt.Sprintf("DISCONNECT on connection #%d", p.Conn))
			}
		case p.Type == mqttframe.SUBACK:
			code := p.Code
			rec.Code = &code
		case p.Type == mqttframe.PUBLISH && p.Dir == link.Upstream:
			t := wl.topics[p.Topic]
			if t == nil {
				t = &wireTopic{}
				wl.topics[p.Topic] = t
			}
			if p.DUP {
				t.resends++
			} else {
				t.publishes++
			}
		}
	}
	rec.Client = c.client
	if wl.err == nil {
		wl.err = wl.enc.Encode(rec)
	}
}

func (wl *wireLog) counts() (conns, packets int) {
	wl.mu.Lock()
	defer wl.mu.Unlock()
	return len(wl.conns), wl.packets
}

func (wl *wireLog) devices() []string {
	wl.mu.Lock()
	defer wl.mu.Unlock()
	return slices.Clone(wl.devs)
}

func (wl *wireLog) topicCounts() map[string]wireTopic {
	wl.mu.Lock()
	defer wl.mu.Unlock()
	out := make(map[string]wireTopic, len(wl.topics))
	for k, v := range wl.topics {
		out[k] = *v
	}
	return out
}

// close flushes and closes the file; it reports records the tap overwrote before they were copied.
func (wl *wireLog) close() error {
	wl.mu.Lock()
	defer wl.mu.Unlock()
	if wl.closed {
		return nil
	}
	wl.closed = true
	err := errors.Join(wl.err, wl.w.Flush(), wl.f.Close())
	if wl.missed > 0 {
		err = errors.Join(err, fmt.Errorf("%d tap records were overwritten before they were written", wl.missed))
	}
	return err
}
