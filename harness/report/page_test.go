package report

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/mqttas/mqttas-go/harness/timeline"
	"golang.org/x/net/html"
)

func regexpAll(expr, s string) []string {
	var out []string
	for _, m := range regexp.MustCompile(expr).FindAllStringSubmatch(s, -1) {
		out = append(out, m[1])
	}
	return out
}

func fixturePage(t *testing.T, run Run) string {
	t.Helper()
	dir, _ := writeRun(t, run)
	return string(readFile(t, filepath.Join(dir, IndexFile)))
}

func TestPageContents(t *testing.T) {
	page := fixturePage(t, fixtureRun(t))
	for _, want := range []string{
		`<div class="word">FAIL</div>`,
		`1 lost · 1 unexpected`,
		`<svg id="timeline"`,
		`>#1 partition<`, `>#2 latency<`, // fault labels in the plot
		`fault: partition`, `fault: latency`, // and in the legend
		`>p1<`, `>sub<`, // client lanes
		`seconds since the start of the run`,
		`p1 t/a#3 never delivered to sub`, // the lost message
		`sub got &#34;garbage&#34;`,       // the unexpected delivery
		`p50 20.0ms · p90 400.0ms · p99 400.0ms · max 400.0ms (n=8)`,
		`direction=both`, `latency_ms=200`,
		`mosquitto`, `2.0.11`, `keepalive`, `2s`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("index.html lacks %q", want)
		}
	}
	// The marked history line of the lost message, as the browser shows it.
	doc := parseHTML(t, page)
	if ex := text(byID(t, doc, "examples")); !strings.Contains(ex, "> +0.300000s invoke     p1 t/a#3\n") {
		t.Errorf("the lost message's context lacks its marked invoke:\n%s", ex)
	}
	// The fixture's data holds no URL, so none may appear anywhere.
	for _, bad := range []*regexp.Regexp{
		regexp.MustCompile(`(?i)https?:|ftp:|data:|javascript:`),
		regexp.MustCompile(`(?i)@import|url\s*\(|@font-face`),
	} {
		if m := bad.FindString(page); m != "" {
			t.Errorf("index.html mentions %q", m)
		}
	}
	assertSelfContained(t, page)
}

// assertSelfContained fails if the page, as a browser parses it, would fetch
// or run anything: no element that loads or runs, no attribute that links
// (other than to the report's own files) or handles events, and CSS with no
// imports or url().
func assertSelfContained(t *testing.T, page string) {
	t.Helper()
	doc := parseHTML(t, page)
	for n := range doc.Descendants() {
		if n.Type != html.ElementNode {
			continue
		}
		switch n.Data {
		case "script", "link", "img", "iframe", "object", "embed", "image", "use", "base", "form", "audio", "video", "source", "meta":
			if n.Data == "meta" && (attr(n, "charset") != "" || attr(n, "name") == "viewport") {
				break
			}
			t.Errorf("index.html has a <%s> element", n.Data)
		case "style":
			if css := strings.ToLower(text(n)); strings.Contains(css, "url(") || strings.Contains(css, "@import") || strings.Contains(css, "@font-face") {
				t.Error("the stylesheet loads something")
			}
		}
		for _, a := range n.Attr {
			k := strings.ToLower(a.Key)
			switch {
			case strings.HasPrefix(k, "on"):
				t.Errorf("<%s> has an event handler %s", n.Data, a.Key)
			case k == "src" || k == "srcset" || k == "action" || k == "formaction" || k == "xlink:href" || k == "poster":
				t.Errorf("<%s %s=%q>", n.Data, a.Key, a.Val)
			case k == "href" && a.Val != SummaryFile && a.Val != HistoryFile:
				t.Errorf("<%s> links to %q", n.Data, a.Val)
			case k == "style" && strings.Contains(strings.ToLower(a.Val), "url("):
				t.Errorf("<%s> style loads %q", n.Data, a.Val)
			}
		}
	}
}

func TestPageEscapes(t *testing.T) {
	run := fixtureRun(t)
	evil := `<script>alert("x")</script>`
	run.Name = evil
	run.Clients[0].Name = `p1"><img src=x onerror=alert(1)>`
	run.Versions["mqttas"] = `</td></tr></table><b>`
	run.Config["note"] = `javascript:alert(1)`
	run.Schedule[0].Fault = `<svg onload=alert(1)>`
	run.Timeline.BeginFault(at(900), "link", `"><rect onclick="x`, map[string]any{"k": "<v>"})
	run.Timeline.Record(at(910), run.Clients[0].Name, "down", "")
	page := fixturePage(t, run)
	for _, raw := range []string{evil, `<img`, `</td></tr></table><b>`, `<svg onload`, `"><rect onclick`} {
		if strings.Contains(page, raw) {
			t.Errorf("index.html contains %q unescaped", raw)
		}
	}
	assertSelfContained(t, page)
	if !strings.Contains(page, "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;") {
		t.Error("the run name is not shown escaped")
	}
	// The escaped page still has its structure.
	doc := parseHTML(t, page)
	if n := len(findAll(doc, func(n *html.Node) bool { return n.Data == "table" && attr(n, "id") == "clients" })); n != 1 {
		t.Errorf("%d clients tables", n)
	}
}

func parseHTML(t *testing.T, page string) *html.Node {
	t.Helper()
	doc, err := html.Parse(strings.NewReader(page))
	if err != nil {
		t.Fatalf("index.html does not parse: %v", err)
	}
	return doc
}

func findAll(n *html.Node, match func(*html.Node) bool) []*html.Node {
	var out []*html.Node
	for d := range n.Descendants() {
		if d.Type == html.ElementNode && match(d) {
			out = append(out, d)
		}
	}
	return out
}

func byID(t *testing.T, doc *html.Node, id string) *html.Node {
	t.Helper()
	found := findAll(doc, func(n *html.Node) bool { return attr(n, "id") == id })
	if len(found) != 1 {
		t.Fatalf("%d elements with id %q, want 1", len(found), id)
	}
	return found[0]
}

func attr(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

func hasClass(n *html.Node, class string) bool {
	return strings.Contains(" "+attr(n, "class")+" ", " "+class+" ")
}

func text(n *html.Node) string {
	var b strings.Builder
	for d := range n.Descendants() {
		if d.Type == html.TextNode {
			b.WriteString(d.Data)
		}
	}
	return b.String()
}

func rows(t *testing.T, doc *html.Node, table string) []*html.Node {
	t.Helper()
	tb := byID(t, doc, table)
	if tb.Data != "table" {
		t.Fatalf("#%s is a %s, not a table", table, tb.Data)
	}
	return findAll(tb, func(n *html.Node) bool {
		return n.Data == "tr" && n.Parent != nil && n.Parent.Data == "tbody"
	})
}

// TestPageStructure reads the page the way a browser does and checks its
// parts: the banner, the tables and the plot's shapes.
func TestPageStructure(t *testing.T) {
	page := fixturePage(t, fixtureRun(t))
	doc := parseHTML(t, page)

	banner := byID(t, doc, "verdict")
	if !hasClass(banner, "fail") || !strings.Contains(text(banner), "FAIL") || !strings.Contains(text(banner), "1 lost") {
		t.Errorf("banner: class %q text %q", attr(banner, "class"), text(banner))
	}

	figs := rows(t, doc, "figures")
	got := map[string]string{}
	for _, r := range figs {
		cells := findAll(r, func(n *html.Node) bool { return n.Data == "td" || n.Data == "th" })
		got[text(cells[0])] = text(cells[1])
		if text(cells[0]) == "Lost" && !hasClass(r, "bad") {
			t.Error("the Lost row is not marked bad")
		}
	}
	for k, v := range map[string]string{
		"Lost": "1", "Unexpected": "1", "Duplicates": "1 (1 extra delivery)", "Reordered": "1", "Outages": "2",
		"Detection time": "p50 10.0ms · p90 30.0ms · p99 30.0ms · max 30.0ms (n=2)",
		"Reconnect time": "p50 200.0ms · p90 205.0ms · p99 205.0ms · max 205.0ms (n=2)",
	} {
		if got[k] != v {
			t.Errorf("verdict table %s = %q, want %q", k, got[k], v)
		}
	}
	if n := len(rows(t, doc, "schedule")); n != 2 {
		t.Errorf("schedule table has %d rows, want 2", n)
	}
	if n := len(rows(t, doc, "faults")); n != 2 {
		t.Errorf("faults table has %d rows, want 2", n)
	}
	if cl := rows(t, doc, "clients"); len(cl) != 2 || !strings.HasPrefix(text(cl[0]), "p1") {
		t.Errorf("clients table: %d rows", len(cl))
	}
	if pres := findAll(byID(t, doc, "examples"), func(n *html.Node) bool { return n.Data == "pre" }); len(pres) != 4 {
		t.Errorf("%d history excerpts, want lost, unexpected, duplicated and reordered", len(pres))
	}

	svg := byID(t, doc, "timeline")
	count := func(tag, class string) int {
		return len(findAll(svg, func(n *html.Node) bool { return n.Data == tag && hasClass(n, class) }))
	}
	for _, c := range []struct {
		tag, class string
		want       int
	}{
		{"rect", "fault", 2},  // two windows
		{"text", "flabel", 2}, // labelled
		{"rect", "down", 2},   // p1 and sub each down once
		{"rect", "lost", 1},
		{"rect", "unexpected", 1},
		{"path", "outagemark", 1}, // p1 noticed its outage
		{"path", "retrymark", 1},  // one path of p1's two attempts
		{"text", "lanename", 3},   // p1, sub, lost/unexpected
		{"path", "series", 7},     // 4 rates, 3 latency lines
		{"rect", "frame", 2},      // rate and latency panels
	} {
		if got := count(c.tag, c.class); got != c.want {
			t.Errorf("plot has %d %s.%s, want %d", got, c.tag, c.class, c.want)
		}
	}
	// Tick labels in seconds along the bottom.
	var ticks []string
	for _, n := range findAll(svg, func(n *html.Node) bool {
		return n.Data == "text" && hasClass(n, "tick") && attr(n, "text-anchor") == "middle"
	}) {
		ticks = append(ticks, text(n))
	}
	if strings.Join(ticks, " ") != "0 0.1 0.2 0.3 0.4 0.5 0.6 0.7 0.8 0.9 1" {
		t.Errorf("time axis ticks %q", ticks)
	}

	// The SVG is well-formed XML on its own, so it can be cut out of the
	// page and opened by itself.
	assertXML(t, svgFragment(t, page))
}

func svgFragment(t *testing.T, page string) string {
	t.Helper()
	i := strings.Index(page, `<svg id="timeline"`)
	j := strings.Index(page[max(i, 0):], "</svg>")
	if i < 0 || j < 0 {
		t.Fatal("no timeline svg")
	}
	return page[i : i+j+len("</svg>")]
}

func assertXML(t *testing.T, fragment string) {
	t.Helper()
	dec := xml.NewDecoder(strings.NewReader(fragment))
	depth, elements := 0, 0
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("svg is not well-formed XML: %v", err)
		}
		switch tok.(type) {
		case xml.StartElement:
			depth++
			elements++
		case xml.EndElement:
			depth--
		}
	}
	if depth != 0 || elements < 50 {
		t.Errorf("svg: depth %d at the end, %d elements", depth, elements)
	}
}

func TestPagePassAndPlannedFaults(t *testing.T) {
	run := cleanRun(t, 4000, 400)
	run.Timeline = nil // no recorded faults: the schedule is shaded instead
	run.Schedule = []ScheduledFault{{At: ms(2000), Fault: "reset", Duration: ms(1000)}}
	page := fixturePage(t, run)
	doc := parseHTML(t, page)
	if b := byID(t, doc, "verdict"); !hasClass(b, "pass") || !strings.Contains(text(b), "PASS") {
		t.Errorf("banner %q", text(b))
	}
	svg := byID(t, doc, "timeline")
	planned := findAll(svg, func(n *html.Node) bool { return n.Data == "rect" && hasClass(n, "planned") })
	if len(planned) != 1 || !strings.Contains(text(planned[0]), "planned") {
		t.Errorf("planned fault windows: %d", len(planned))
	}
	if !strings.Contains(text(svg), "none lost, none unexpected") {
		t.Error("the lost lane does not say none were lost")
	}
	assertSelfContained(t, page)
	assertXML(t, svgFragment(t, page))
	if bytes.Contains([]byte(page), []byte("Counterexamples")) && !strings.Contains(page, "Nothing lost, nothing unexpected.") {
		t.Error("no counterexamples, yet the page does not say so")
	}
}

// Many clients with many short outages still make a plot of bounded size:
// lanes are capped and outages closer than a pixel merge into one bar.
func TestPlotManyClientsAndOutages(t *testing.T) {
	run := cleanRun(t, 1000, 100) // 10s
	run.Clients = nil
	for c := range 50 {
		name := fmt.Sprintf("client-%02d", c)
		run.Clients = append(run.Clients, ClientSummary{Name: name, Outages: 400})
		for i := range 400 {
			down := ms(i * 5)
			run.Timeline.Add(timeline.Entry{At: down, Kind: timeline.Down, Source: name})
			run.Timeline.Add(timeline.Entry{At: down + ms(2), Kind: timeline.Up, Source: name})
		}
	}
	// A fault flapping every 3ms, and a long one over it.
	for i := range 1000 {
		f := run.Timeline.BeginFault(fixtureStart.Add(ms(i*3)), "link", "flap", nil)
		if err := run.Timeline.EndFault(fixtureStart.Add(ms(i*3+1)), f, ""); err != nil {
			t.Fatal(err)
		}
	}
	run.Timeline.BeginFault(fixtureStart.Add(ms(1000)), "link", "partition", nil)
	// One client also has a single long outage, never healed.
	run.Timeline.Add(timeline.Entry{At: ms(11_000), Kind: timeline.Down, Source: "client-00"})
	page := fixturePage(t, run)
	if d := os.Getenv("ZZDIR"); d != "" {
		os.WriteFile(d+"/stress.html", []byte(page), 0o644)
	}
	t.Logf("index.html: %d bytes", len(page))
	if len(page) > 400<<10 {
		t.Errorf("index.html is %d bytes", len(page))
	}
	doc := parseHTML(t, page)
	if n := len(rows(t, doc, "faults")); n != maxTableRows || !strings.Contains(page, "… and 802 more in summary.json") {
		t.Errorf("faults table has %d rows of 1002 (cleanRun has one); %q", n, regexpAll(`(<p class="more">[^<]*)`, page))
	}
	svg := byID(t, doc, "timeline")
	shades := findAll(svg, func(n *html.Node) bool { return n.Data == "rect" && hasClass(n, "fault") })
	if len(shades) < 2 || len(shades) > 50 {
		t.Errorf("%d fault shapes for 1002 windows", len(shades))
	} else if !strings.Contains(text(shades[0]), "× flap (#2…) between") {
		t.Errorf("first fault shape %q", text(shades[0]))
	}
	lanes := findAll(svg, func(n *html.Node) bool { return n.Data == "text" && hasClass(n, "lanename") })
	if len(lanes) != maxLanes+1 || !strings.Contains(text(lanes[maxLanes-1]), "and 12 more clients") { // 50 + pub-0 from the timeline; 39 drawn
		t.Errorf("%d lane labels, the last but one %q", len(lanes), text(lanes[len(lanes)-2]))
	}
	bars := findAll(svg, func(n *html.Node) bool { return n.Data == "rect" && hasClass(n, "down") })
	if len(bars) < maxLanes-1 || len(bars) > 4*maxLanes {
		t.Errorf("%d outage bars for %d lanes of 400 outages", len(bars), maxLanes-1)
	}
	if !strings.Contains(text(bars[0]), "down 400 times") {
		t.Errorf("first bar title %q", text(bars[0]))
	}
	if !slices.ContainsFunc(bars, func(n *html.Node) bool { return strings.Contains(text(n), "never back up") }) {
		t.Error("the open outage is not shown")
	}
}
