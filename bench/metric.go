package bench

import (
	"encoding/json"
	"math"
)

// Series is one value per round, NaN where the measurement failed; it encodes NaN as JSON null.
type Series []float64

// MarshalJSON writes NaN and ±Inf as null.
func (s Series) MarshalJSON() ([]byte, error) {
	out := make([]*float64, len(s))
	for i, x := range s {
		if !math.IsNaN(x) && !math.IsInf(x, 0) {
			out[i] = &x
		}
	}
	return json.Marshal(out)
}

// UnmarshalJSON reads null as NaN.
func (s *Series) UnmarshalJSON(b []byte) error {
	var in []*float64
	if err := json.Unmarshal(b, &in); err != nil {
		return err
	}
	*s = make(Series, len(in))
	for i, p := range in {
		(*s)[i] = math.NaN()
		if p != nil {
			(*s)[i] = *p
		}
	}
	return nil
}

// MarshalJSON writes a summary with null statistics when it holds no measurement.
func (s Summary) MarshalJSON() ([]byte, error) {
	num := func(x float64) *float64 {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return nil
		}
		return &x
	}
	return json.Marshal(struct {
		N      int      `json:"n"`
		Median *float64 `json:"median"`
		Min    *float64 `json:"min"`
		Max    *float64 `json:"max"`
	}{s.N, num(s.Median), num(s.Min), num(s.Max)})
}

// ToolsName names the mosquitto_pub/mosquitto_sub reference in a metric's values.
const ToolsName = "mosquitto_pub/sub"

// Metric is one measured quantity for each client (and possibly the mosquitto tools), round by round.
type Metric struct {
	ID     string            `json:"id"`
	Name   string            `json:"name"`
	Unit   string            `json:"unit"`   // msg/s, µs, ms, bytes, count, allocs
	Better string            `json:"better"` // higher or lower
	Values map[string]Series `json:"values"` // by client, one value per round
	// Summary and the ratios are filled by finish.
	Summary    map[string]Summary `json:"summary"`
	Ratio      *Summary           `json:"ratio_mqttas_paho,omitempty"`  // per-round mqttas/paho
	RatioTools *Summary           `json:"ratio_mqttas_tools,omitempty"` // per-round mqttas/tools
	RatioRaw   *Summary           `json:"ratio_mqttas_raw,omitempty"`   // per-round mqttas/raw socket floor
	// Format is how the tables render the values, saved so that a report loaded from its JSON renders
	// the same tables.
	Format  numFormat `json:"format"`
	noRatio bool      // counts that should be 0: a ratio means nothing
}

func newMetric(id, name, unit, better string, f numFormat) *Metric {
	return &Metric{ID: id, Name: name, Unit: unit, Better: better, Values: map[string]Series{}, Format: f}
}

// set records client's value for round r (0-based), growing the series with NaN as needed.
func (m *Metric) set(client string, r int, v float64) {
	s := m.Values[client]
	for len(s) <= r {
		s = append(s, math.NaN())
	}
	s[r] = v
	m.Values[client] = s
}

// fail records a failed measurement for client in round r.
func (m *Metric) fail(client string, r int) { m.set(client, r, math.NaN()) }

// finish computes the summaries and ratios.
func (m *Metric) finish() {
	m.Summary = map[string]Summary{}
	for k, v := range m.Values {
		m.Summary[k] = Summarize(v)
	}
	if m.noRatio {
		return
	}
	if a, b := m.Values[MQTTAS], m.Values[Paho]; len(a) > 0 && len(b) > 0 {
		r := Ratios(a, b)
		m.Ratio = &r
	}
	if a, b := m.Values[MQTTAS], m.Values[ToolsName]; len(a) > 0 && len(b) > 0 {
		r := Ratios(a, b)
		m.RatioTools = &r
	}
	if a, b := m.Values[MQTTAS], m.Values[RawName]; len(a) > 0 && len(b) > 0 {
		r := Ratios(a, b)
		m.RatioRaw = &r
	}
}

// cell renders client's summary.
func (m *Metric) cell(client string) string {
	s, ok := m.Summary[client]
	if !ok {
		return ""
	}
	return s.Format(m.Format.render)
}

func ratioCell(r *Summary) string {
	if r == nil {
		return ""
	}
	return r.Format(fmtRatio)
}

// numFormat names a number formatter of the tables; the name is what a report's JSON holds.
type numFormat string

const (
	asRate   numFormat = "rate"   // messages per second: 91.3k
	asRatio  numFormat = "ratio"  // 1.23×
	asMS     numFormat = "ms"     // milliseconds
	asSec    numFormat = "sec"    // milliseconds rendered as seconds
	asSecs   numFormat = "secs"   // seconds
	asUS     numFormat = "us"     // microseconds, no decimals
	asUS1    numFormat = "us1"    // microseconds, one decimal
	asUS3    numFormat = "us3"    // microseconds, three decimals
	asKB     numFormat = "kb"     // bytes rendered as KB
	asFloat  numFormat = "float"  // a plain number, one decimal unless whole
	asFloat1 numFormat = "float1" // one decimal
	asFloat2 numFormat = "float2" // two decimals
	asPct    numFormat = "pct"    // a percentage
	asInt    numFormat = "int"    // no decimals
)

// formatter returns the formatter f names, or false for a name no table knows.
func (f numFormat) formatter() (func(float64) string, bool) {
	switch f {
	case asRate:
		return fmtRate, true
	case asRatio:
		return fmtRatio, true
	case asMS:
		return fmtMS, true
	case asSec:
		return fmtSec, true
	case asSecs:
		return fmtSecs, true
	case asUS:
		return fmtUS, true
	case asUS1:
		return fmtUS1, true
	case asUS3:
		return fmtUS3, true
	case asKB:
		return fmtKB, true
	case asFloat:
		return fmtFloat, true
	case asFloat1:
		return fmtFloat1, true
	case asFloat2:
		return fmtFloat2, true
	case asPct:
		return fmtPct, true
	case asInt:
		return fmtInt, true
	}
	return nil, false
}

// render formats x; an unknown format renders as a plain number.
func (f numFormat) render(x float64) string {
	if g, ok := f.formatter(); ok {
		return g(x)
	}
	return fmtFloat(x)
}
