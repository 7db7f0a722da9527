package report

import (
	"bufio"
	_ "embed"
	"fmt"
	"html/template"
	"maps"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/mqttas/mqttas-go/harness/ledger"
)

//go:embed page.html.tmpl
var pageSource string

// pageTemplate is parsed once; templates are safe for concurrent use.
var pageTemplate = template.Must(template.New("page").Funcs(template.FuncMap{
	"dur":   human,
	"quant": quantText,
	"secs":  secs,
	"lower": strings.ToLower,
}).Parse(pageSource))

// pageData is what the page template renders.
type pageData struct {
	S        *Summary
	Title    string
	Headline string // lost and unexpected counts
	Subline  string // the other counts
	Figures  []figure
	Plot     *svgPlot
	Schedule []scheduleRow
	Faults   []faultRow
	Clients  []clientRow
	Versions []keyValue
	Config   []keyValue
	Files    []string
	// Rows left out of the schedule and faults tables (all are in
	// summary.json).
	MoreSchedule, MoreFaults int
}

// maxTableRows bounds the schedule and fault tables of the page.
const maxTableRows = 200

// figure is one row of the verdict table.
type figure struct {
	Name, Value, Meaning string
	Class                string // bad, good or ""
}

type scheduleRow struct {
	At, Fault, Params, Duration string
}

type faultRow struct {
	ID                                             int
	Name, Source, Params, Start, End, Length, Note string
	Fill                                           string
}

type clientRow struct {
	Name, Clean                string
	Outages                    int
	Downs, Reconnects, Resends int
	Detection, Reconnect       string
	Stats                      []keyValue
}

type keyValue struct{ Key, Value string }

func writePage(path string, an *analysis, h *history) error {
	s := &an.summary
	d := pageData{
		S:        s,
		Title:    fmt.Sprintf("%s %s", s.Verdict, orDash(s.Name)),
		Figures:  figures(s),
		Headline: fmt.Sprintf("%d lost · %d unexpected", s.Lost, s.Unexpected),
		Subline: fmt.Sprintf("%d of %s acknowledged · %d delivered · %d duplicated · %s · %s",
			s.Acknowledged, plural(s.Attempted, "message"), s.Delivered, s.Duplicates, plural(s.Outages, "outage"), plural(len(s.Faults), "fault")),
		Plot:         buildPlot(an, h),
		Files:        []string{SummaryFile, an.history},
		MoreSchedule: max(len(s.Schedule)-maxTableRows, 0),
		MoreFaults:   max(len(s.Faults)-maxTableRows, 0),
	}
	for _, f := range s.Schedule[:min(len(s.Schedule), maxTableRows)] {
		d.Schedule = append(d.Schedule, scheduleRow{At: secs(f.At), Fault: f.Fault, Params: stringParams(f.Params), Duration: human(f.Duration)})
	}
	fills := faultFills(s.Faults)
	for _, w := range s.Faults[:min(len(s.Faults), maxTableRows)] {
		r := faultRow{ID: w.Fault, Name: w.Name, Source: w.Source, Params: params(w.Params), Start: secs(w.Start), End: secs(w.End), Length: human(w.End - w.Start), Fill: fills[w.Name]}
		if w.Open {
			r.Note = "never healed"
		}
		d.Faults = append(d.Faults, r)
	}
	for _, c := range s.Clients {
		r := clientRow{
			Name: c.Name, Clean: "no", Outages: c.Outages,
			Downs:      c.Events["down"],
			Reconnects: c.Events["reconnect"] + c.Events["connect-failed"],
			Resends:    c.Events["dup-resend"] + c.Events["pid-renew"],
			Detection:  quantText(c.Detection),
			Reconnect:  quantText(c.Reconnect),
		}
		if c.Clean {
			r.Clean = "yes"
		}
		for _, k := range slices.Sorted(maps.Keys(c.Stats)) {
			r.Stats = append(r.Stats, keyValue{k, fmt.Sprint(c.Stats[k])})
		}
		d.Clients = append(d.Clients, r)
	}
	for _, k := range slices.Sorted(maps.Keys(s.Versions)) {
		d.Versions = append(d.Versions, keyValue{k, s.Versions[k]})
	}
	for _, k := range slices.Sorted(maps.Keys(s.Config)) {
		d.Config = append(d.Config, keyValue{k, configValue(s.Config[k])})
	}

	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	defer f.Close()
	bw := bufio.NewWriter(f)
	if err := pageTemplate.Execute(bw, d); err != nil {
		return fmt.Errorf("report: render %s: %w", path, err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	return nil
}

// figures is the verdict table: what failed the run first, then what is
// reported, then the run's counts and times.
func figures(s *Summary) []figure {
	bad := func(n int) string {
		if n > 0 {
			return "bad"
		}
		return "good"
	}
	warn := func(n int) string {
		if n > 0 {
			return "warn"
		}
		return ""
	}
	dup := fmt.Sprint(s.Duplicates)
	if s.Duplicates > 0 {
		dup = fmt.Sprintf("%d (%s)", s.Duplicates, plural(s.DuplicateDeliveries, "extra delivery"))
	}
	rec := fmt.Sprint(s.Recovered)
	if s.FalseFailures > 0 {
		rec = fmt.Sprintf("%d (%d reported as not sent)", s.Recovered, s.FalseFailures)
	}
	return []figure{
		{"Lost", fmt.Sprint(s.Lost), "acknowledged, never delivered to a subscriber that should have had it (must be 0)", bad(s.Lost)},
		{"Unexpected", fmt.Sprint(s.Unexpected), "deliveries of nothing published, corrupt or misrouted (must be 0)", bad(s.Unexpected)},
		{"Dropped", fmt.Sprint(s.Dropped), "lost, but within the broker's declared queue limits", warn(s.Dropped)},
		{"Duplicates", dup, "messages delivered to a subscriber more than once (allowed for QoS 1)", warn(s.Duplicates)},
		{"Reordered", fmt.Sprint(s.Reordered), "first deliveries that came after a later message of the same publisher and topic", warn(s.Reordered)},
		{"Recovered", rec, "publishes with no acknowledgement that were delivered anyway", warn(s.FalseFailures)},
		{"Attempted", fmt.Sprintf("%d messages, %d attempts", s.Attempted, s.Attempts), "distinct messages and publish calls", ""},
		{"Acknowledged", fmt.Sprint(s.Acknowledged), fmt.Sprintf("%d failed definitely, %d indeterminate", s.Failed, s.Indeterminate), ""},
		{"Delivered", fmt.Sprint(s.Delivered), fmt.Sprintf("distinct messages delivered; %d deliveries in all", s.Deliveries), ""},
		{"Delivery latency", quantText(s.Latency), "publish call → first delivery, per message and subscriber", ""},
		{"Ack latency", quantText(s.AckLatency), "publish call → acknowledgement", ""},
		{"Outages", fmt.Sprint(s.Outages), "connection losses, all clients", ""},
		{"Detection time", quantText(s.Detection), "fault → the client noticed (validate.Detection), all clients", ""},
		{"Reconnect time", quantText(s.Reconnect), "heal → connected again (validate.Reconnect), all clients", ""},
	}
}

// quantText renders quantiles in one line, or "—" if there were none.
func quantText(q ledger.Quantiles) string {
	if q.N == 0 {
		return "—"
	}
	return fmt.Sprintf("p50 %s · p90 %s · p99 %s · max %s (n=%d)", human(q.P50), human(q.P90), human(q.P99), human(q.Max), q.N)
}

// human renders a duration with three significant digits or so.
func human(d time.Duration) string {
	a := d
	if a < 0 {
		a = -a
	}
	switch {
	case a == 0:
		return "0s"
	case a < time.Microsecond:
		return d.String()
	case a < time.Millisecond:
		return fmt.Sprintf("%.1fµs", float64(d)/float64(time.Microsecond))
	case a < time.Second:
		return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond))
	case a < time.Minute:
		return fmt.Sprintf("%.2fs", d.Seconds())
	}
	return d.Round(time.Second).String()
}

// params renders fault parameters as sorted key=value pairs.
func params(p map[string]any) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(p)) {
		parts = append(parts, fmt.Sprintf("%s=%v", k, p[k]))
	}
	return strings.Join(parts, " ")
}

func stringParams(p map[string]string) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(p)) {
		parts = append(parts, k+"="+p[k])
	}
	return strings.Join(parts, " ")
}

func configValue(v any) string {
	if d, ok := v.(time.Duration); ok {
		return d.String()
	}
	return fmt.Sprint(v)
}
