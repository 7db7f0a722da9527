package report

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mqttas/mqttas-go/harness/timeline"
	"github.com/mqttas/mqttas-go/harness/validate"
)

// The timeline plot is built here as plain shapes and drawn by the page
// template, which escapes every string; nothing here writes markup.

type svgRect struct {
	X, Y, W, H string
	Class      string
	Fill       string
	Title      string
}

type svgLine struct {
	X1, Y1, X2, Y2 string
	Class          string
}

type svgText struct {
	X, Y   string
	Anchor string // start, middle, end
	Class  string
	Text   string
	Title  string
}

type svgPath struct {
	D      string
	Class  string
	Stroke string
}

// svgPlot is the whole timeline figure.
type svgPlot struct {
	Width, Height int
	Title         string
	Rects         []svgRect // fault windows, lanes, outage bars
	Lines         []svgLine // grid, axes, ticks, markers
	Paths         []svgPath // series
	Marks         []svgPath // client event marks, drawn over the outage bars
	Texts         []svgText // labels
	Legend        []legendItem
}

type legendItem struct {
	Label  string
	Class  string
	Stroke string
	Fill   string
}

// Plot geometry, in SVG user units (pixels at 100%).
const (
	plotWidth    = 1180
	plotLeft     = 110 // room for lane names and y tick labels
	plotRight    = 16
	labelRowH    = 14 // fault label rows above the panels
	maxLabelRows = 3
	rateH        = 170
	latencyH     = 150
	laneH        = 20
	panelGap     = 26
	axisH        = 40
	maxBuckets   = 400
	maxLanes     = 40 // client lanes drawn; the table lists every client
)

// Series colours, shared with the legend.
const (
	colPublish    = "#9dbbe0"
	colAck        = "#204a87"
	colDeliver    = "#2e8b57"
	colFailed     = "#cc0000"
	colP50        = "#5c3566"
	colMax        = "#e07b00"
	colUnexpected = "#8e44ad"
)

// faultPalette shades fault windows, one colour per fault name in order of
// first appearance.
var faultPalette = [...]string{"#f4c2c2", "#f7dca8", "#d3c6f0", "#bfe0f2", "#cae6c0", "#f0c8e3", "#e3dcb8"}

// faultFills assigns each fault name in windows its shade.
func faultFills(windows []timeline.Window) map[string]string {
	fills := map[string]string{}
	for _, w := range windows {
		if _, ok := fills[w.Name]; !ok {
			fills[w.Name] = faultPalette[len(fills)%len(faultPalette)]
		}
	}
	return fills
}

// bucket is one time slice of the series, [from, to).
type bucket struct {
	from, to                         time.Duration
	invokes, oks, failed, deliveries int
	p50, p99, max                    time.Duration
	latencies                        int
}

// rate is n events per second over the bucket.
func (b *bucket) rate(n int) float64 { return float64(n) / (b.to - b.from).Seconds() }

// bucketWidth picks a round bucket width giving at most maxBuckets buckets;
// at least a second once the run is long enough to afford it, so rates are
// not dominated by counting noise.
func bucketWidth(span time.Duration) time.Duration {
	steps := []time.Duration{
		100 * time.Millisecond, 200 * time.Millisecond, 250 * time.Millisecond, 500 * time.Millisecond,
		time.Second, 2 * time.Second, 5 * time.Second, 10 * time.Second, 15 * time.Second, 30 * time.Second,
		time.Minute, 2 * time.Minute, 5 * time.Minute, 10 * time.Minute, 15 * time.Minute, 30 * time.Minute, time.Hour,
	}
	for _, w := range steps {
		if span >= 20*time.Second && w < time.Second {
			continue
		}
		if span/w < maxBuckets {
			return w
		}
	}
	w := steps[len(steps)-1]
	for span/w >= maxBuckets {
		w *= 2
	}
	return w
}

// series buckets the indexed history, which is in time order, into buckets
// of width over [0, span). A last bucket shorter than a tenth of width is
// folded into its predecessor, so that a run ending just after a bucket
// boundary does not end in a rate computed over a sliver.
func series(h *history, span, width time.Duration) []bucket {
	out := emptyBuckets(span, width)
	n := len(out)
	var lat []time.Duration
	flush := func(i int) {
		if len(lat) == 0 {
			return
		}
		slices.Sort(lat)
		b := &out[i]
		b.latencies = len(lat)
		b.p50 = lat[max(int(math.Ceil(0.50*float64(len(lat))))-1, 0)]
		b.p99 = lat[max(int(math.Ceil(0.99*float64(len(lat))))-1, 0)]
		b.max = lat[len(lat)-1]
		lat = lat[:0]
	}
	cur := 0
	for _, l := range h.lines {
		i := min(max(int(l.at/width), 0), n-1)
		if i != cur {
			flush(cur)
			cur = i
		}
		b := &out[i]
		switch l.kind {
		case lineInvoke:
			b.invokes++
		case lineOK:
			b.oks++
		case lineFail, lineInfo:
			b.failed++
		case lineDeliver:
			b.deliveries++
			if l.lat >= 0 {
				lat = append(lat, l.lat)
			}
		case lineUnexpected:
			b.deliveries++
		}
	}
	flush(cur)
	return out
}

// emptyBuckets returns the buckets of width over [0, span), the last one
// taking a sliver shorter than a tenth of width beyond it.
func emptyBuckets(span, width time.Duration) []bucket {
	n := int(span / width)
	if n == 0 || span-time.Duration(n)*width > width/10 {
		n++
	}
	out := make([]bucket, n)
	for i := range out {
		out[i].from, out[i].to = time.Duration(i)*width, time.Duration(i+1)*width
	}
	out[n-1].to = max(span, out[n-1].from+1)
	return out
}

// plotter maps times and values to SVG coordinates.
type plotter struct {
	p    *svgPlot
	span time.Duration
	x0   float64 // left edge of the plot area
	w    float64 // width of the plot area
}

func (pl *plotter) x(t time.Duration) float64 {
	f := float64(t) / float64(pl.span)
	return pl.x0 + pl.w*min(max(f, 0), 1)
}

func num(f float64) string { return strconv.FormatFloat(f, 'f', 1, 64) }

// buildPlot draws the timeline figure: fault windows over every panel, the
// publish/ack/delivery/failure rates, the delivery latency (p50, p99 and max
// per bucket, log scale), one lane per client with its outages, and a lane
// with the lost and unexpected messages.
func buildPlot(an *analysis, h *history) *svgPlot {
	s := &an.summary
	span := max(s.Span, s.Duration, time.Second)
	width := bucketWidth(span)
	var buckets []bucket
	switch {
	case an.series != nil:
		width, buckets = an.series.buckets(span)
	default:
		buckets = series(h, span, width)
	}

	pl := &plotter{p: &svgPlot{Width: plotWidth}, span: span, x0: plotLeft, w: plotWidth - plotLeft - plotRight}
	p := pl.p
	p.Title = fmt.Sprintf("Timeline of %s: fault windows shaded; rates and latency per %v bucket; client outages", orDash(s.Name), width)

	windows := s.Faults
	planned := false
	if len(windows) == 0 {
		windows, planned = scheduleWindows(s.Schedule), true
	}
	fills := faultFills(windows)
	shades := pl.shades(windows)
	rows := pl.faultLabels(shades, planned)

	y := float64(rows*labelRowH + 6)
	top := y
	y = pl.ratePanel(buckets, y) + panelGap
	y = pl.latencyPanel(buckets, y) + panelGap
	y = pl.lanes(an, y)
	bottom := y

	// Fault shading goes under everything else: prepend.
	var rects []svgRect
	for _, sh := range shades {
		r := svgRect{X: num(sh.x1), Y: num(top), W: num(sh.x2 - sh.x1), H: num(bottom - top), Class: "fault", Fill: fills[sh.w.Name], Title: sh.title(planned)}
		if planned {
			r.Class = "fault planned"
		}
		rects = append(rects, r)
	}
	p.Rects = append(rects, p.Rects...)

	pl.timeAxis(top, bottom)
	p.Height = int(bottom) + axisH
	p.Legend = []legendItem{
		{Label: "published/s", Stroke: colPublish, Class: "wide"},
		{Label: "acknowledged/s", Stroke: colAck, Class: "dashed"},
		{Label: "delivered/s", Stroke: colDeliver},
		{Label: "failed or indeterminate/s", Stroke: colFailed},
		{Label: "latency p50", Stroke: colP50},
		{Label: "latency p99", Stroke: colP50, Class: "dashed"},
		{Label: "latency max", Stroke: colMax},
		{Label: "client down", Fill: "#cc0000"},
		{Label: "lost message", Fill: "#000000"},
		{Label: "unexpected delivery", Fill: colUnexpected},
	}
	for _, name := range faultNames(windows) {
		p.Legend = append(p.Legend, legendItem{Label: "fault: " + name, Fill: fills[name]})
	}
	return p
}

// scheduleWindows turns the planned schedule into windows, for runs whose
// timeline recorded no faults.
func scheduleWindows(sched []ScheduledFault) []timeline.Window {
	var out []timeline.Window
	for i, f := range sched {
		params := map[string]any{}
		for k, v := range f.Params {
			params[k] = v
		}
		out = append(out, timeline.Window{Fault: i + 1, Name: f.Fault, Params: params, Start: f.At, End: f.At + f.Duration})
	}
	return out
}

func windowTitle(w timeline.Window, planned bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "#%d %s", w.Fault, w.Name)
	if w.Source != "" {
		fmt.Fprintf(&b, " (%s)", w.Source)
	}
	fmt.Fprintf(&b, " %s → %s", secs(w.Start), secs(w.End))
	if p := params(w.Params); p != "" {
		b.WriteString(" " + p)
	}
	if w.Open {
		b.WriteString(", never healed")
	}
	if planned {
		b.WriteString(" (planned; the timeline recorded no faults)")
	}
	return b.String()
}

func faultNames(windows []timeline.Window) []string {
	var names []string
	for _, w := range windows {
		if !slices.Contains(names, w.Name) {
			names = append(names, w.Name)
		}
	}
	return names
}

// shade is the shape of one fault window, or of several windows of the same
// fault less than a pixel apart, so that a fault flapping all day stays a
// few hundred shapes.
type shade struct {
	x1, x2 float64
	w      timeline.Window // the first
	n      int
	last   time.Duration // the end of the last
}

func (sh shade) label() string {
	if sh.n > 1 {
		return fmt.Sprintf("%d× %s", sh.n, sh.w.Name)
	}
	return fmt.Sprintf("#%d %s", sh.w.Fault, sh.w.Name)
}

func (sh shade) title(planned bool) string {
	if sh.n > 1 {
		return fmt.Sprintf("%d × %s (#%d…) between %s and %s", sh.n, sh.w.Name, sh.w.Fault, secs(sh.w.Start), secs(sh.last))
	}
	return windowTitle(sh.w, planned)
}

// shades merges windows, which are ordered by start, into shapes.
func (pl *plotter) shades(windows []timeline.Window) []shade {
	var out []shade
	latest := map[string]int{} // fault name → index of its latest shade
	for _, w := range windows {
		x1, x2 := pl.x(w.Start), max(pl.x(w.End), pl.x(w.Start)+1.5)
		if i, ok := latest[w.Name]; ok && x1-out[i].x2 < 1 {
			out[i].x2, out[i].n, out[i].last = max(out[i].x2, x2), out[i].n+1, max(out[i].last, w.End)
			continue
		}
		latest[w.Name] = len(out)
		out = append(out, shade{x1: x1, x2: x2, w: w, n: 1, last: w.End})
	}
	return out
}

// faultLabels writes the fault names above the panels, in up to
// maxLabelRows rows so that neighbouring labels do not overlap; a label that
// fits in no row is left out (its shape keeps its tooltip). It returns the
// number of rows used.
func (pl *plotter) faultLabels(shades []shade, planned bool) int {
	var rowEnd [maxLabelRows]float64
	used := 0
	for _, sh := range shades {
		label := sh.label()
		need := float64(len([]rune(label)))*6.2 + 8
		for r := range maxLabelRows {
			if rowEnd[r] == 0 || sh.x1 >= rowEnd[r] {
				rowEnd[r] = sh.x1 + need
				used = max(used, r+1)
				pl.p.Texts = append(pl.p.Texts, svgText{X: num(sh.x1 + 1), Y: num(float64(r*labelRowH + 11)), Class: "flabel", Text: label, Title: sh.title(planned)})
				break
			}
		}
	}
	return max(used, 1)
}

// ratePanel draws messages per second for each bucket, from y; it returns
// the panel's bottom.
func (pl *plotter) ratePanel(buckets []bucket, y float64) float64 {
	peak := 0.0
	for _, b := range buckets {
		peak = max(peak, b.rate(b.invokes), b.rate(b.oks), b.rate(b.deliveries), b.rate(b.failed))
	}
	top, bottom := y, y+rateH
	ticks := linearTicks(peak)
	hi := ticks[len(ticks)-1]
	vy := func(v float64) float64 { return bottom - (bottom-top)*v/hi }
	pl.panel(top, bottom, "messages/s")
	for _, v := range ticks {
		pl.hGrid(vy(v), formatRate(v))
	}
	step := func(get func(bucket) int, stroke, class string) {
		var d strings.Builder
		for i, b := range buckets {
			x0, x1, yv := pl.x(b.from), pl.x(b.to), vy(b.rate(get(b)))
			if i == 0 {
				fmt.Fprintf(&d, "M%s %s", num(x0), num(yv))
			} else {
				fmt.Fprintf(&d, "V%s", num(yv))
			}
			fmt.Fprintf(&d, "H%s", num(x1))
		}
		pl.p.Paths = append(pl.p.Paths, svgPath{D: d.String(), Stroke: stroke, Class: class})
	}
	step(func(b bucket) int { return b.invokes }, colPublish, "series wide")
	step(func(b bucket) int { return b.oks }, colAck, "series thin dashed")
	step(func(b bucket) int { return b.deliveries }, colDeliver, "series")
	step(func(b bucket) int { return b.failed }, colFailed, "series")
	return bottom
}

// latencyPanel draws delivery latency per bucket on a log scale.
func (pl *plotter) latencyPanel(buckets []bucket, y float64) float64 {
	top, bottom := y, y+latencyH
	lo, hi := time.Duration(math.MaxInt64), time.Duration(0)
	for _, b := range buckets {
		if b.latencies > 0 {
			lo, hi = min(lo, max(b.p50, time.Microsecond)), max(hi, b.max)
		}
	}
	pl.panel(top, bottom, "delivery latency")
	if hi == 0 {
		pl.p.Texts = append(pl.p.Texts, svgText{X: num(pl.x0 + pl.w/2), Y: num((top + bottom) / 2), Anchor: "middle", Class: "none", Text: "no deliveries"})
		return bottom
	}
	d0 := math.Floor(math.Log10(lo.Seconds()))
	d1 := math.Ceil(math.Log10(max(hi, time.Microsecond).Seconds()))
	if d1-d0 < 2 {
		d0 = d1 - 2
	}
	vy := func(d time.Duration) float64 {
		l := math.Log10(max(d, time.Microsecond).Seconds())
		return bottom - (bottom-top)*min(max((l-d0)/(d1-d0), 0), 1)
	}
	for e := d0; e <= d1; e++ {
		pl.hGrid(vy(time.Duration(math.Pow(10, e)*float64(time.Second))), formatDecade(e))
	}
	// Steps like the rates, one level per bucket; the pen lifts over
	// buckets without deliveries.
	line := func(get func(bucket) time.Duration, stroke, class string) {
		var d strings.Builder
		pen := false
		for _, b := range buckets {
			if b.latencies == 0 {
				pen = false
				continue
			}
			x0, x1, yv := pl.x(b.from), pl.x(b.to), vy(get(b))
			if pen {
				fmt.Fprintf(&d, "V%s", num(yv))
			} else {
				fmt.Fprintf(&d, "M%s %s", num(x0), num(yv))
			}
			fmt.Fprintf(&d, "H%s", num(x1))
			pen = true
		}
		pl.p.Paths = append(pl.p.Paths, svgPath{D: d.String(), Stroke: stroke, Class: class})
	}
	line(func(b bucket) time.Duration { return b.max }, colMax, "series thin")
	line(func(b bucket) time.Duration { return b.p99 }, colP50, "series thin dashed")
	line(func(b bucket) time.Duration { return b.p50 }, colP50, "series")
	return bottom
}

// lanes draws one lane per client with its down→up outages, reconnect
// attempts and detected outages, then a lane of lost and unexpected
// messages. It returns the bottom of the last lane.
func (pl *plotter) lanes(an *analysis, y float64) float64 {
	p := pl.p
	end := max(an.summary.Span, an.summary.Duration)
	bySource := map[string][]timeline.Entry{}
	for _, e := range an.entries {
		bySource[e.Source] = append(bySource[e.Source], e)
	}
	clients := an.summary.Clients
	if len(clients) > maxLanes {
		clients = clients[:maxLanes-1]
	}
	for _, c := range clients {
		mid := y + laneH/2
		p.Rects = append(p.Rects, svgRect{X: num(pl.x0), Y: num(y + 3), W: num(pl.w), H: num(laneH - 6), Class: "lane"})
		p.Texts = append(p.Texts, svgText{X: num(pl.x0 - 6), Y: num(mid + 4), Anchor: "end", Class: "lanename", Text: clip(c.Name, 16), Title: c.Name})
		// Marks of one kind make one path, at most one mark per two pixels.
		type marks struct {
			d    strings.Builder
			last int
		}
		byKind := map[string]*marks{}
		var kinds []string
		mark := func(class string, at time.Duration, h float64) {
			m, ok := byKind[class]
			if !ok {
				m = &marks{last: -10}
				byKind[class] = m
				kinds = append(kinds, class)
			}
			x := pl.x(at)
			if int(x)/2 == m.last {
				return
			}
			m.last = int(x) / 2
			fmt.Fprintf(&m.d, "M%s %sv%s", num(x), num(mid-h), num(2*h))
		}
		// Outages closer than a pixel apart merge into one bar, so that
		// thousands of short outages stay a handful of shapes.
		type outage struct {
			from, to time.Duration
			n        int
			open     bool
		}
		var bars []outage
		bar := func(from, to time.Duration, open bool) {
			if k := len(bars) - 1; k >= 0 && pl.x(from)-pl.x(bars[k].to) < 1 {
				bars[k].to, bars[k].n, bars[k].open = to, bars[k].n+1, open
				return
			}
			bars = append(bars, outage{from, to, 1, open})
		}
		// The outages are validate's (down or outage → up); an up that ends none is a first connection.
		ended := map[time.Duration]bool{}
		for _, o := range validate.Outages(bySource[c.Name], c.Name) {
			if o.Open {
				bar(o.Start, end, true)
				continue
			}
			bar(o.Start, o.End, false) // the bar's end shows the up
			ended[o.End] = true
		}
		for _, e := range bySource[c.Name] {
			switch e.Kind {
			case timeline.Up:
				if !ended[e.At] {
					mark("upmark", e.At, 6)
				}
			case timeline.Reconnect, timeline.ConnectFailed:
				mark("retrymark", e.At, 4)
			case timeline.Outage:
				mark("outagemark", e.At, 8)
			case timeline.Resend, timeline.PIDRenew:
				mark("resendmark", e.At, 3)
			}
		}
		for _, b := range bars {
			x1, x2 := pl.x(b.from), pl.x(b.to)
			var title string
			switch {
			case b.n > 1:
				title = fmt.Sprintf("%s down %d times between %s and %s", c.Name, b.n, secs(b.from), secs(b.to))
			case b.open:
				title = fmt.Sprintf("%s down from %s, never back up", c.Name, secs(b.from))
			default:
				title = fmt.Sprintf("%s down %s → %s (%s)", c.Name, secs(b.from), secs(b.to), human(b.to-b.from))
			}
			if b.open && b.n > 1 {
				title += ", the last never back up"
			}
			p.Rects = append(p.Rects, svgRect{X: num(x1), Y: num(y + 3), W: num(max(x2-x1, 2)), H: num(laneH - 6), Class: "down", Title: title})
		}
		for _, k := range kinds {
			p.Marks = append(p.Marks, svgPath{D: byKind[k].d.String(), Class: k})
		}
		y += laneH
	}
	if more := len(an.summary.Clients) - len(clients); more > 0 {
		p.Texts = append(p.Texts, svgText{X: num(pl.x0 + 6), Y: num(y + laneH/2 + 4), Class: "lanename", Text: fmt.Sprintf("… and %d more clients: see the clients table", more)})
		y += laneH
	}

	// The lost and unexpected lane.
	mid := y + laneH/2
	p.Rects = append(p.Rects, svgRect{X: num(pl.x0), Y: num(y + 3), W: num(pl.w), H: num(laneH - 6), Class: "lane"})
	p.Texts = append(p.Texts, svgText{X: num(pl.x0 - 6), Y: num(mid + 4), Anchor: "end", Class: "lanename", Text: "lost/unexp."})
	r := &an.result
	lost, unexpected := map[int]int{}, map[int]int{}
	for _, l := range r.Lost {
		lost[int(pl.x(l.Invoked))]++
	}
	for _, u := range r.Unexpected {
		unexpected[int(pl.x(u.At))]++
	}
	ticks := func(at map[int]int, class, what string) {
		for _, x := range slices.Sorted(maps.Keys(at)) {
			t := time.Duration((float64(x) - pl.x0) / pl.w * float64(pl.span))
			p.Rects = append(p.Rects, svgRect{X: num(float64(x) - 1.5), Y: num(y + 2), W: "4", H: num(laneH - 4), Class: class,
				Title: fmt.Sprintf("%d %s near %s", at[x], what, secs(t))})
		}
	}
	ticks(lost, "lost", "lost (by invoke time)")
	ticks(unexpected, "unexpected", "unexpected")
	if len(lost)+len(unexpected) == 0 {
		p.Texts = append(p.Texts, svgText{X: num(pl.x0 + 6), Y: num(mid + 4), Class: "none", Text: "none lost, none unexpected"})
	}
	return y + laneH
}

// panel draws a panel's frame and its y-axis title.
func (pl *plotter) panel(top, bottom float64, title string) {
	pl.p.Rects = append(pl.p.Rects, svgRect{X: num(pl.x0), Y: num(top), W: num(pl.w), H: num(bottom - top), Class: "frame"})
	pl.p.Texts = append(pl.p.Texts, svgText{X: num(pl.x0 + 4), Y: num(top + 12), Class: "ptitle", Text: title})
}

// hGrid draws a horizontal grid line with its tick label at y.
func (pl *plotter) hGrid(y float64, label string) {
	pl.p.Lines = append(pl.p.Lines, svgLine{X1: num(pl.x0), Y1: num(y), X2: num(pl.x0 + pl.w), Y2: num(y), Class: "grid"})
	pl.p.Texts = append(pl.p.Texts, svgText{X: num(pl.x0 - 6), Y: num(y + 4), Anchor: "end", Class: "tick", Text: label})
}

// timeAxis draws vertical grid lines and the seconds axis under bottom.
func (pl *plotter) timeAxis(top, bottom float64) {
	step := timeStep(pl.span)
	for t := time.Duration(0); t <= pl.span; t += step {
		x := pl.x(t)
		pl.p.Lines = append(pl.p.Lines,
			svgLine{X1: num(x), Y1: num(top), X2: num(x), Y2: num(bottom), Class: "vgrid"},
			svgLine{X1: num(x), Y1: num(bottom), X2: num(x), Y2: num(bottom + 5), Class: "axis"})
		pl.p.Texts = append(pl.p.Texts, svgText{X: num(x), Y: num(bottom + 17), Anchor: "middle", Class: "tick", Text: strconv.FormatFloat(t.Seconds(), 'f', -1, 64)})
	}
	pl.p.Lines = append(pl.p.Lines, svgLine{X1: num(pl.x0), Y1: num(bottom), X2: num(pl.x0 + pl.w), Y2: num(bottom), Class: "axis"})
	pl.p.Texts = append(pl.p.Texts, svgText{X: num(pl.x0 + pl.w/2), Y: num(bottom + 33), Anchor: "middle", Class: "axtitle", Text: "seconds since the start of the run"})
}

// timeStep picks a round tick step giving at most about 12 ticks.
func timeStep(span time.Duration) time.Duration {
	for _, s := range []float64{0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 21600, 43200, 86400} {
		d := time.Duration(s * float64(time.Second))
		if span/d <= 12 {
			return d
		}
	}
	return span / 12
}

// linearTicks returns 0 and round values up to at least peak, 3 to 6 of
// them.
func linearTicks(peak float64) []float64 {
	if peak <= 0 {
		return []float64{0, 1}
	}
	mag := math.Pow(10, math.Floor(math.Log10(peak)))
	var step float64
	for _, m := range []float64{0.2, 0.25, 0.5, 1, 2, 2.5, 5, 10} {
		step = m * mag
		if peak/step <= 5 {
			break
		}
	}
	var ticks []float64
	for v := 0.0; ; v += step {
		ticks = append(ticks, v)
		if v >= peak {
			return ticks
		}
	}
}

func formatRate(v float64) string {
	switch {
	case v >= 1e6:
		return strconv.FormatFloat(v/1e6, 'f', -1, 64) + "M"
	case v >= 1e4:
		return strconv.FormatFloat(v/1e3, 'f', -1, 64) + "k"
	}
	return strconv.FormatFloat(v, 'f', -1, 64)
}

func formatDecade(e float64) string {
	switch {
	case e <= -7:
		return fmt.Sprintf("%gns", math.Pow(10, e+9))
	case e <= -4:
		return fmt.Sprintf("%gµs", math.Pow(10, e+6))
	case e <= -1:
		return fmt.Sprintf("%gms", math.Pow(10, e+3))
	}
	return fmt.Sprintf("%gs", math.Pow(10, e))
}

// secs renders an offset from the start as seconds, e.g. "12.345s".
func secs(d time.Duration) string {
	return strconv.FormatFloat(d.Seconds(), 'f', 3, 64) + "s"
}

func clip(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

func orDash(s string) string {
	if s == "" {
		return "the run"
	}
	return s
}
