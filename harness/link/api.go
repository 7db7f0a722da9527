package link

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/Shopify/toxiproxy/v2/toxics"

	"github.com/mqttas/mqttas-go/harness/link/mqttframe"
)

// The MQTT-aware faults as toxic types of Toxiproxy's HTTP API (see Link.API). Their attributes:
//
//	mqtt_drop:  {"packet_type": "PUBACK", "count": 0}   drop that type in the toxic's stream; count 0: all
//	            of them while the toxic exists, n > 0: the next n
//	mqtt_delay: {"packet_type": "PUBACK", "delay": 1500} hold each one for delay milliseconds
//
// The stream is Toxiproxy's: "upstream" is client → broker, "downstream" (the default) broker → client.
const (
	DropToxicType  = "mqtt_drop"
	DelayToxicType = "mqtt_delay"
)

// maxAPIBody bounds what the API reads of a request.
const maxAPIBody = 1 << 20

// dropToxic and delayToxic hold the attributes of the MQTT toxics. The toxics themselves pass every byte:
// the link's tap, first in every chain, drops or delays the packets, so its records say what happened.
type dropToxic struct {
	PacketType string `json:"packet_type"`
	Count      int    `json:"count"`
}

func (*dropToxic) Pipe(stub *toxics.ToxicStub) { new(toxics.NoopToxic).Pipe(stub) }

type delayToxic struct {
	PacketType string `json:"packet_type"`
	Delay      int64  `json:"delay"` // milliseconds
}

func (*delayToxic) Pipe(stub *toxics.ToxicStub) { new(toxics.NoopToxic).Pipe(stub) }

// APIChange is one change made through the API: a toxic added or removed, or the proxy disabled
// (Type "down", Added) or enabled again.
type APIChange struct {
	At         time.Time
	Name       string // the toxic's name; "down" for disabling
	Type       string // the toxic's type; "down" for disabling
	Stream     string
	Attributes map[string]any
	Added      bool // false: removed
}

// API returns Toxiproxy's own HTTP API for the link (its proxy is called ProxyName), so Toxiproxy's
// clients and curl can list the proxy, add and remove toxics and disable and enable it, plus the MQTT
// toxics DropToxicType and DelayToxicType. What would break the link is refused with Toxiproxy's error
// body ({"error": ..., "status": ...}): creating or deleting proxies, moving the listener, removing the
// tap or the toxics the link's own verbs installed. POST /reset heals the link (Heal) and removes every
// toxic added through the API. notify, if not nil, is called after each change made through the API.
func (l *Link) API(notify func(APIChange)) http.Handler {
	if notify == nil {
		notify = func(APIChange) {}
	}
	return &api{l: l, inner: l.srv.Routes(), notify: notify}
}

type api struct {
	l      *Link
	inner  http.Handler
	notify func(APIChange)
}

func apiError(w http.ResponseWriter, status int, format string, args ...any) {
	body, _ := json.Marshal(toxiproxy.ApiError{Message: fmt.Sprintf(format, args...), StatusCode: status})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
}

// statusWriter remembers the status a handler answered with.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (s *statusWriter) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

func (a *api) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	mutates := r.Method != http.MethodGet && r.Method != http.MethodHead
	switch {
	case !mutates:
	case len(parts) == 1 && parts[0] == "reset" && r.Method == http.MethodPost:
		a.reset(w, r)
		return
	case len(parts) == 1 && (parts[0] == "proxies" || parts[0] == "populate"):
		apiError(w, http.StatusForbidden, "this toxiproxy serves one MQTT link, proxy %q: proxies cannot be created", ProxyName)
		return
	case len(parts) >= 2 && parts[0] == "proxies" && parts[1] != ProxyName:
		// Toxiproxy answers: proxy not found.
	case len(parts) == 2 && r.Method == http.MethodDelete:
		apiError(w, http.StatusForbidden, "proxy %q is the MQTT link and cannot be deleted; disable it with {\"enabled\": false}", ProxyName)
		return
	case len(parts) == 2:
		a.update(w, r)
		return
	case len(parts) == 3 && parts[2] == "toxics" && r.Method == http.MethodPost:
		a.create(w, r)
		return
	case len(parts) == 4 && parts[2] == "toxics":
		a.change(w, r, parts[3])
		return
	}
	a.inner.ServeHTTP(w, r)
}

// readBody reads the request body, or answers with an error and returns false.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxAPIBody+1))
	if err != nil {
		apiError(w, http.StatusBadRequest, "bad request body: %v", err)
		return nil, false
	}
	if len(body) > maxAPIBody {
		apiError(w, http.StatusRequestEntityTooLarge, "request body larger than %d bytes", maxAPIBody)
		return nil, false
	}
	return body, true
}

// update handles POST/PATCH /proxies/mqtt: enabled goes through Down and Up, upstream through
// SetUpstream, so the link's own view stays right; the listener cannot move.
func (a *api) update(w http.ResponseWriter, r *http.Request) {
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	var in struct {
		Listen   *string `json:"listen"`
		Upstream *string `json:"upstream"`
		Enabled  *bool   `json:"enabled"`
	}
	if err := json.Unmarshal(body, &in); err != nil {
		apiError(w, http.StatusBadRequest, "bad request body: %v", err)
		return
	}
	if in.Listen != nil && *in.Listen != a.l.addr {
		apiError(w, http.StatusBadRequest, "listen %q: the link's address cannot change (devices point at %s)", *in.Listen, a.l.addr)
		return
	}
	ctx := r.Context()
	if in.Upstream != nil && *in.Upstream != a.l.Upstream() {
		if err := a.l.SetUpstream(ctx, *in.Upstream); err != nil {
			apiError(w, http.StatusBadRequest, "%v", err)
			return
		}
	}
	if in.Enabled != nil {
		a.l.mu.Lock()
		wasDown := !a.l.down.IsZero()
		a.l.mu.Unlock()
		var err error
		if *in.Enabled {
			err = a.l.Up(ctx)
		} else {
			err = a.l.Down(ctx)
		}
		if err != nil {
			apiError(w, http.StatusInternalServerError, "%v", err)
			return
		}
		if wasDown == *in.Enabled {
			a.notify(APIChange{At: time.Now(), Name: "down", Type: "down", Added: !*in.Enabled})
		}
	}
	show := r.Clone(ctx)
	show.Method, show.Body, show.ContentLength = http.MethodGet, http.NoBody, 0
	a.inner.ServeHTTP(w, show)
}

// packetType parses an MQTT packet type name.
func packetType(name string) (mqttframe.Type, error) {
	var names []string
	for t := mqttframe.CONNECT; t <= mqttframe.DISCONNECT; t++ {
		if strings.EqualFold(name, t.String()) {
			return t, nil
		}
		names = append(names, t.String())
	}
	return 0, fmt.Errorf("packet_type %q: want one of %s", name, strings.Join(names, ", "))
}

// packetRule is an MQTT toxic's rule, checked.
type packetRule struct {
	dir   Direction
	typ   mqttframe.Type
	drop  bool
	count int
	delay time.Duration
}

// parseRule checks an MQTT toxic's request; the error is the message for a 400.
func parseRule(typ, streamName string, toxicity *float64, attrs json.RawMessage) (packetRule, error) {
	var pr packetRule
	switch strings.ToLower(streamName) {
	case "", "downstream":
		pr.dir = Downstream
	case "upstream":
		pr.dir = Upstream
	default:
		return pr, fmt.Errorf("stream %q: want upstream (client → broker) or downstream (broker → client)", streamName)
	}
	if toxicity != nil && *toxicity != 1 {
		return pr, fmt.Errorf("toxicity %v: %s applies to every connection (toxicity 1)", *toxicity, typ)
	}
	if len(attrs) == 0 {
		return pr, fmt.Errorf("attributes: missing (%s needs packet_type)", typ)
	}
	dec := json.NewDecoder(bytes.NewReader(attrs))
	dec.DisallowUnknownFields()
	var name string
	if typ == DropToxicType {
		var d dropToxic
		if err := dec.Decode(&d); err != nil {
			return pr, fmt.Errorf("attributes: %v", err)
		}
		if d.Count < 0 {
			return pr, fmt.Errorf("count %d: want 0 (all) or the number of packets to drop", d.Count)
		}
		name, pr.drop, pr.count = d.PacketType, true, d.Count
	} else {
		var d delayToxic
		if err := dec.Decode(&d); err != nil {
			return pr, fmt.Errorf("attributes: %v", err)
		}
		if d.Delay <= 0 {
			return pr, fmt.Errorf("delay %d: want milliseconds > 0", d.Delay)
		}
		name, pr.delay = d.PacketType, time.Duration(d.Delay)*time.Millisecond
	}
	t, err := packetType(name)
	if err != nil {
		return pr, err
	}
	pr.typ = t
	return pr, nil
}

// create handles POST /proxies/mqtt/toxics: MQTT toxics are checked here and become the tap's rules;
// the others are Toxiproxy's own.
func (a *api) create(w http.ResponseWriter, r *http.Request) {
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	var in struct {
		Name       string          `json:"name"`
		Type       string          `json:"type"`
		Stream     string          `json:"stream"`
		Toxicity   *float64        `json:"toxicity"`
		Attributes json.RawMessage `json:"attributes"`
	}
	if err := json.Unmarshal(body, &in); err != nil {
		apiError(w, http.StatusBadRequest, "bad request body: %v", err)
		return
	}
	if in.Type == tapType {
		apiError(w, http.StatusBadRequest, "invalid toxic type: %s is the link's tap", tapType)
		return
	}
	var attrs map[string]any
	_ = json.Unmarshal(in.Attributes, &attrs)
	change := APIChange{Name: in.Name, Type: in.Type, Stream: in.Stream, Attributes: attrs, Added: true}
	if change.Stream == "" {
		change.Stream = "downstream"
	}
	if change.Name == "" {
		change.Name = in.Type + "_" + change.Stream
	}
	if in.Type != DropToxicType && in.Type != DelayToxicType {
		r.Body = io.NopCloser(bytes.NewReader(body))
		sw := &statusWriter{ResponseWriter: w}
		a.inner.ServeHTTP(sw, r)
		if sw.status == http.StatusOK {
			change.At = time.Now()
			a.notify(change)
		}
		return
	}
	pr, err := parseRule(in.Type, in.Stream, in.Toxicity, in.Attributes)
	if err != nil {
		apiError(w, http.StatusBadRequest, "%s: %v", in.Type, err)
		return
	}
	if act := a.l.eng.ruleAction(pr.dir, pr.typ); act != mqttframe.Forward {
		apiError(w, http.StatusConflict, "%s: %v %s are already %sed by another rule: remove it first", in.Type, pr.typ, pr.dir, act)
		return
	}
	wrapper, err := a.l.proxy.Toxics.AddToxicJson(bytes.NewReader(body))
	if err != nil {
		if ae, ok := err.(*toxiproxy.ApiError); ok {
			apiError(w, ae.StatusCode, "%s", ae.Message)
		} else {
			apiError(w, http.StatusInternalServerError, "%v", err)
		}
		return
	}
	if pr.drop {
		n := pr.count
		if n == 0 {
			n = -1
		}
		err = a.l.DropPackets(pr.dir, pr.typ, n)
	} else {
		err = a.l.DelayPackets(pr.dir, pr.typ, pr.delay)
	}
	if err != nil {
		_ = a.l.proxy.Toxics.RemoveToxic(r.Context(), wrapper.Name)
		apiError(w, http.StatusInternalServerError, "%v", err)
		return
	}
	change.At = time.Now()
	a.notify(change)
	data, err := json.Marshal(wrapper)
	if err != nil {
		apiError(w, http.StatusInternalServerError, "%v", err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(data)
}

// managed reports whether a toxic belongs to the link itself: the tap, or a fault its verbs added.
func (a *api) managed(name string) bool {
	if strings.HasPrefix(name, "tap-") {
		return true
	}
	a.l.mu.Lock()
	defer a.l.mu.Unlock()
	for _, tf := range a.l.faults {
		if slices.Contains(tf.names, name) {
			return true
		}
	}
	return false
}

// change handles updates and removals of one toxic.
func (a *api) change(w http.ResponseWriter, r *http.Request, name string) {
	if a.managed(name) {
		apiError(w, http.StatusForbidden, "toxic %q belongs to the link (its tap or a scheduled fault) and cannot be changed here", name)
		return
	}
	tw := a.l.proxy.Toxics.GetToxic(name)
	if tw == nil {
		apiError(w, http.StatusNotFound, "toxic not found: %q (GET /proxies/%s/toxics lists them)", name, ProxyName)
		return
	}
	if r.Method != http.MethodDelete {
		if tw.Type == DropToxicType || tw.Type == DelayToxicType {
			apiError(w, http.StatusBadRequest, "%s toxics cannot be updated: delete %q and add it again", tw.Type, name)
			return
		}
		a.inner.ServeHTTP(w, r)
		return
	}
	typ, streamName := tw.Type, tw.Stream
	var rule *packetRule
	if typ == DropToxicType || typ == DelayToxicType {
		attrs, _ := json.Marshal(tw.Toxic)
		if pr, err := parseRule(typ, streamName, nil, attrs); err == nil {
			rule = &pr
		}
	}
	sw := &statusWriter{ResponseWriter: w}
	a.inner.ServeHTTP(sw, r)
	if sw.status != http.StatusNoContent && sw.status != http.StatusOK {
		return
	}
	if rule != nil {
		a.l.eng.clearRule(rule.dir, rule.typ)
	}
	a.notify(APIChange{At: time.Now(), Name: name, Type: typ, Stream: streamName})
}

// reset handles POST /reset: Toxiproxy's own would remove the tap too.
func (a *api) reset(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	a.l.mu.Lock()
	wasDown := !a.l.down.IsZero()
	a.l.mu.Unlock()
	if err := a.l.Heal(ctx); err != nil {
		apiError(w, http.StatusInternalServerError, "%v", err)
		return
	}
	if wasDown {
		a.notify(APIChange{At: time.Now(), Name: "down", Type: "down"})
	}
	for _, t := range a.l.proxy.Toxics.GetToxicArray() {
		tw, ok := t.(*toxics.ToxicWrapper)
		if !ok || a.managed(tw.Name) {
			continue
		}
		if err := a.l.proxy.Toxics.RemoveToxic(ctx, tw.Name); err != nil {
			apiError(w, http.StatusInternalServerError, "remove toxic %s: %v", tw.Name, err)
			return
		}
		a.notify(APIChange{At: time.Now(), Name: tw.Name, Type: tw.Type, Stream: tw.Stream})
	}
	w.WriteHeader(http.StatusNoContent)
}
