package bench

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/mqttas/mqttas-go/harness/report"
)

// The committed results: cmd/bench writes its reports to ResultsDir (relative to the repository's root),
// and "cmd/bench readme" renders them into the README's generated sections.
const (
	ResultsDir  = "bench/results"
	README      = "README.md"
	BenchFile   = "bench.json"
	CompareFile = "compare.json"
	// ReadmeCommand is the command that rewrites the README's generated sections.
	ReadmeCommand = "go run ./cmd/bench readme"
)

// ErrBadResults marks a results file that cannot be read back: damaged, of another version, or not
// a report at all.
var ErrBadResults = errors.New("bench: bad results file")

// ErrMarkers marks a README whose generated sections cannot be found or are malformed.
var ErrMarkers = errors.New("bench: README generated-section markers")

// decodeStrict decodes one JSON value from data into v, rejecting unknown fields and trailing data.
func decodeStrict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("data after the report")
	}
	return nil
}

// UnmarshalJSON reads a summary as MarshalJSON writes it (null statistics are NaN), rejecting unknown
// fields.
func (s *Summary) UnmarshalJSON(b []byte) error {
	var in struct {
		N      int      `json:"n"`
		Median *float64 `json:"median"`
		Min    *float64 `json:"min"`
		Max    *float64 `json:"max"`
	}
	if err := decodeStrict(b, &in); err != nil {
		return err
	}
	num := func(p *float64) float64 {
		if p == nil {
			return math.NaN()
		}
		return *p
	}
	*s = Summary{N: in.N, Median: num(in.Median), Min: num(in.Min), Max: num(in.Max)}
	if s.N > 0 && (in.Median == nil || in.Min == nil || in.Max == nil) {
		return fmt.Errorf("a summary of %d values without its statistics", s.N)
	}
	return nil
}

func readResults(file string, v any, check func() error) error {
	data, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	if err := decodeStrict(data, v); err != nil {
		return fmt.Errorf("%s: %w: %w", file, ErrBadResults, err)
	}
	if err := check(); err != nil {
		return fmt.Errorf("%s: %w: %w", file, ErrBadResults, err)
	}
	return nil
}

// LoadBenchReport reads a report that "cmd/bench bench" wrote, strictly: unknown fields, trailing data and
// missing provenance are errors that name the file.
func LoadBenchReport(file string) (*BenchReport, error) {
	r := &BenchReport{}
	err := readResults(file, r, func() error {
		if err := r.Machine.check(); err != nil {
			return err
		}
		if r.Command == "" {
			return errors.New("no command")
		}
		if r.Config.Rounds <= 0 {
			return fmt.Errorf("%d rounds", r.Config.Rounds)
		}
		if len(r.Metrics) == 0 || len(r.Goals) == 0 {
			return errors.New("no metrics or no goals")
		}
		r.byID = map[string]*Metric{}
		for i, m := range r.Metrics {
			switch {
			case m == nil || m.ID == "":
				return fmt.Errorf("metric %d has no id", i)
			case r.byID[m.ID] != nil:
				return fmt.Errorf("metric %s appears twice", m.ID)
			}
			if _, ok := m.Format.formatter(); !ok {
				return fmt.Errorf("metric %s: unknown format %q", m.ID, m.Format)
			}
			for lib, s := range m.Values {
				if len(s) > r.Config.Rounds {
					return fmt.Errorf("metric %s: %d values of %s for %d rounds", m.ID, len(s), lib, r.Config.Rounds)
				}
				if _, ok := m.Summary[lib]; !ok {
					return fmt.Errorf("metric %s: no summary of %s", m.ID, lib)
				}
			}
			r.byID[m.ID] = m
		}
		return checkGoals(r.Goals)
	})
	if err != nil {
		return nil, err
	}
	return r, nil
}

// LoadCompareReport reads a report that "cmd/bench compare" wrote, as strictly as LoadBenchReport.
func LoadCompareReport(file string) (*CompareReport, error) {
	r := &CompareReport{}
	err := readResults(file, r, func() error {
		if err := r.Machine.check(); err != nil {
			return err
		}
		if r.Command == "" {
			return errors.New("no command")
		}
		if r.Config.Rounds <= 0 || len(r.Config.Libs) == 0 {
			return fmt.Errorf("%d rounds of %d clients", r.Config.Rounds, len(r.Config.Libs))
		}
		if len(r.Verdicts) == 0 {
			return errors.New("no verdicts")
		}
		for _, v := range r.Verdicts {
			known := slices.ContainsFunc(r.Scenarios, func(s ScenarioInfo) bool { return s.Name == v.Scenario })
			switch {
			case !known:
				return fmt.Errorf("a verdict of scenario %q, which the report does not describe", v.Scenario)
			case !slices.Contains(r.Config.Libs, v.Client):
				return fmt.Errorf("a verdict of client %q, which the report did not run", v.Client)
			case v.Round < 1 || v.Round > r.Config.Rounds:
				return fmt.Errorf("a verdict of round %d of %d", v.Round, r.Config.Rounds)
			}
		}
		return checkGoals(r.Goals)
	})
	if err != nil {
		return nil, err
	}
	return r, nil
}

func (m Machine) check() error {
	if _, err := time.Parse(time.RFC3339, m.Date); err != nil {
		return fmt.Errorf("machine: date: %w", err)
	}
	if m.Commit == "" {
		return errors.New("machine: no commit")
	}
	return nil
}

func checkGoals(gs []Goal) error {
	if len(gs) == 0 {
		return errors.New("no goals")
	}
	for _, g := range gs {
		if g.Goal == "" || (g.Status != goalMet && g.Status != goalMissed && g.Status != goalUnknown) {
			return fmt.Errorf("goal %q with status %q", g.Goal, g.Status)
		}
	}
	return nil
}

// readmeMetrics lists the bench metrics the README shows, in its order; the rest are in bench.md.
func readmeMetrics() []string {
	return []string{
		"qos0.rate", "qos0.cpu_client", "qos0.cpu_broker", "qos0.broker_busy", "qos0.broker_wait", "qos0.broker_idle",
		"qos1seq.p50", "qos1seq.p99",
		"qos1win.rate", "qos1win.cpu_client", "qos1win.cpu_broker", "qos1win.broker_busy", "qos1win.broker_wait", "qos1win.broker_idle",
		"qos1win.sys_read", "qos1win.sys_write",
		"outage.silent.detection", "outage.silent.recovery", "outage.down.recovery",
		"idle.heap+stack", "idle.rss", "idle.goroutines",
		"allocs.publish-qos0", "allocs.publish-qos1", "allocs.qos0-pub+sub",
	}
}

// provenance says where a report's figures come from: the command, the machine, the date and the commit.
func provenance(target, command, file string, m Machine, took time.Duration) string {
	load := m.LoadStart + " at the start"
	if len(m.LoadRounds) > 0 {
		load += ", " + strings.Join(m.LoadRounds, " / ") + " as the rounds started"
	}
	if m.LoadEnd != "" {
		load += ", " + m.LoadEnd + " at the end"
	}
	return fmt.Sprintf("Measured by `%s` (`%s`) on %s, %d logical CPUs (GOMAXPROCS %d), %s of memory, kernel %s, %s; "+
		"%s, mosquitto %s, paho.mqtt.golang %s, mqttas %s; started %s at commit `%s`, took %v; "+
		"load average (1/5/15 min) %s. Every figure of this section is in [`%s`](%s), rendered by `%s`.\n",
		target, command, m.CPU, m.Cores, m.GOMAXPROCS, m.MemoryGB, m.Kernel, m.OS, m.Go, m.Mosquitto, m.Paho, m.MQTTAS,
		m.Date, m.Commit, took.Round(time.Second), load, file, file, ReadmeCommand)
}

// ReadmeBench renders the README's bench section from a saved report: its provenance, the goals table
// and the main measurements.
func ReadmeBench(r *BenchReport) string {
	var b strings.Builder
	b.WriteString(provenance("make bench", r.Command, ResultsDir+"/"+BenchFile, r.Machine, r.Duration))
	fmt.Fprintf(&b, "Cells are median [min–max] over %d rounds, the clients interleaved; ratios are the per-round mqttas/paho "+
		"(the full report, with every measurement and how it is taken: [`%s/bench.md`](%s/bench.md)).\n\n",
		r.Config.Rounds, ResultsDir, ResultsDir)
	b.WriteString(GoalsTable("Goals of `make bench`", r.Goals).Markdown())
	b.WriteString("\n")
	t := &Table{Title: "Measurements", Header: []string{"measurement", MQTTAS, Paho, "mqttas/paho", "reference", "mqttas/reference"}}
	for _, id := range readmeMetrics() {
		if m := r.Metric(id); m != nil {
			t.AddRow(m.row(true)...)
		}
	}
	b.WriteString(t.Markdown())
	if h := r.harnessTable(); len(h.Rows) > 0 {
		h.Notes = nil // bench.md explains them
		b.WriteString("\n")
		b.WriteString(h.Markdown())
	}
	if len(r.Errors) > 0 {
		fmt.Fprintf(&b, "\n%d measurements failed in this run: see [`%s/bench.md`](%s/bench.md).\n", len(r.Errors), ResultsDir, ResultsDir)
	}
	return b.String()
}

// ReadmeCompare renders the README's compare section from a saved report: its provenance, the verdict
// table with one column per client, the goals table and each client's verdicts.
func ReadmeCompare(r *CompareReport) string {
	var b strings.Builder
	b.WriteString(provenance("make compare", r.Command, ResultsDir+"/"+CompareFile, r.Machine, r.Duration))
	fmt.Fprintf(&b, "Each scenario ran %d times per client; counts are summed over the rounds, times are median [min–max] "+
		"(the scenarios, paho's known gaps and every run: [`%s/compare.md`](%s/compare.md)).\n\n",
		r.Config.Rounds, ResultsDir, ResultsDir)
	b.WriteString(r.MatrixTable().Markdown())
	b.WriteString("\n")
	b.WriteString(GoalsTable("Goals of `make compare`", r.Goals).Markdown())
	for _, lib := range r.Config.Libs {
		b.WriteString("\n")
		b.WriteString(ClientTable(lib, r.Scenarios, r.Verdicts).Markdown())
	}
	if len(r.Errors) > 0 {
		fmt.Fprintf(&b, "\n%d runs failed: see [`%s/compare.md`](%s/compare.md).\n", len(r.Errors), ResultsDir, ResultsDir)
	}
	return b.String()
}

// ReadmeSections renders every generated section of the README from the reports, by name. A nil report
// (its results not produced yet) renders as an empty section: the bare markers.
func ReadmeSections(br *BenchReport, cr *CompareReport, long []report.Figures) map[string]string {
	out := map[string]string{"bench": "", "compare": "", longSoakSection: ""}
	if br != nil {
		out["bench"] = ReadmeBench(br)
	}
	if cr != nil {
		out["compare"] = ReadmeCompare(cr)
	}
	if len(long) > 0 {
		out[longSoakSection] = ReadmeLongSoak(long)
	}
	return out
}

// ScaleSections renders the generated sections of ScaleDoc: the long soak's table, empty (the bare
// markers) before its figures are committed.
func ScaleSections(long []report.Figures) map[string]string {
	out := map[string]string{longSoakTable: ""}
	if len(long) > 0 {
		out[longSoakTable] = ScaleLongSoak(long)
	}
	return out
}

// LoadLongSoak reads the long soak's figures in dir; none (nil) when they are not committed yet.
func LoadLongSoak(dir string) ([]report.Figures, error) {
	long, err := report.ReadFigures(filepath.Join(dir, SoakLongFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	return long, err
}

var (
	beginRE = regexp.MustCompile(`^<!-- results:begin (\S+)\b.*-->$`)
	endRE   = regexp.MustCompile(`^<!-- results:end\b.*-->$`)
)

// BeginMarker and EndMarker delimit the generated section name in a document.
func BeginMarker(name string) string {
	return fmt.Sprintf("<!-- results:begin %s (generated by: %s) -->", name, ReadmeCommand)
}

const EndMarker = "<!-- results:end -->"

// Splice replaces the text between each begin marker and its end marker with the section of that name.
// Every section must appear exactly once, and every marker must name a section; text outside the
// markers is kept byte for byte.
func Splice(doc string, sections map[string]string) (string, error) {
	var b strings.Builder
	seen := map[string]bool{}
	open, openLine := "", 0
	lines := strings.SplitAfter(doc, "\n")
	for i, l := range lines {
		n := i + 1
		text := strings.TrimRight(l, "\r\n")
		trimmed := strings.TrimSpace(text)
		if m := beginRE.FindStringSubmatch(trimmed); m != nil {
			name := m[1]
			switch {
			case open != "":
				return "", fmt.Errorf("%w: line %d opens section %q inside section %q (opened at line %d)", ErrMarkers, n, name, open, openLine)
			case seen[name]:
				return "", fmt.Errorf("%w: line %d opens section %q a second time", ErrMarkers, n, name)
			}
			section, ok := sections[name]
			if !ok {
				return "", fmt.Errorf("%w: line %d opens section %q, which is not generated (known: %s)", ErrMarkers, n, name, knownSections(sections))
			}
			open, openLine, seen[name] = name, n, true
			b.WriteString(BeginMarker(name) + "\n")
			if section != "" { // an empty section is the bare markers
				b.WriteString("\n")
				b.WriteString(section)
				if !strings.HasSuffix(section, "\n") {
					b.WriteString("\n")
				}
				b.WriteString("\n")
			}
			continue
		}
		if endRE.MatchString(trimmed) {
			if open == "" {
				return "", fmt.Errorf("%w: line %d closes a section that was not opened", ErrMarkers, n)
			}
			open = ""
			b.WriteString(EndMarker)
			b.WriteString(l[len(text):]) // the line's own ending
			continue
		}
		if strings.Contains(trimmed, "<!-- results:") {
			return "", fmt.Errorf("%w: line %d: a malformed marker %q", ErrMarkers, n, trimmed)
		}
		if open == "" {
			b.WriteString(l)
		}
	}
	if open != "" {
		return "", fmt.Errorf("%w: section %q opened at line %d is never closed (%s)", ErrMarkers, open, openLine, EndMarker)
	}
	if len(seen) == 0 {
		return "", fmt.Errorf("%w: none found; mark each generated section with %s … %s", ErrMarkers, BeginMarker("<name>"), EndMarker)
	}
	var missing []string
	for name := range sections {
		if !seen[name] {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		return "", fmt.Errorf("%w: no section %s", ErrMarkers, strings.Join(missing, ", "))
	}
	return b.String(), nil
}

func knownSections(sections map[string]string) string {
	var names []string
	for n := range sections {
		names = append(names, n)
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}

// Rendered is a file the committed results determine: what it holds and what the results render.
type Rendered struct {
	File, Current, Want string
}

// Render loads the results in dir and renders what they determine: the report pages bench.md and
// compare.md next to them, and the generated sections of the README at readme. A results file not
// produced yet (bench.json before a "make bench", compare.json before a "make compare") leaves its page
// alone and its README section empty, so one can be committed before the other; with neither there is
// nothing to render, and that is an error naming both. A missing page is rendered from scratch; a README
// without its markers is an error.
func Render(readme, dir string) ([]Rendered, error) {
	bfile, cfile := filepath.Join(dir, BenchFile), filepath.Join(dir, CompareFile)
	br, err := LoadBenchReport(bfile)
	if errors.Is(err, os.ErrNotExist) {
		br, err = nil, nil
	}
	if err != nil {
		return nil, err
	}
	cr, err := LoadCompareReport(cfile)
	if errors.Is(err, os.ErrNotExist) {
		cr, err = nil, nil
	}
	if err != nil {
		return nil, err
	}
	if br == nil && cr == nil {
		return nil, fmt.Errorf("no results to render: neither %s nor %s exists (%w)", bfile, cfile, os.ErrNotExist)
	}
	long, err := LoadLongSoak(dir)
	if err != nil {
		return nil, err
	}
	var pages []struct{ name, md string }
	if br != nil {
		pages = append(pages, struct{ name, md string }{"bench.md", br.Markdown()})
	}
	if cr != nil {
		pages = append(pages, struct{ name, md string }{"compare.md", cr.Markdown()})
	}
	var out []Rendered
	for _, p := range pages {
		file := filepath.Join(dir, p.name)
		cur, err := os.ReadFile(file)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
		out = append(out, Rendered{File: file, Current: string(cur), Want: p.md})
	}
	cur, err := os.ReadFile(readme)
	if err != nil {
		return nil, err
	}
	want, err := Splice(string(cur), ReadmeSections(br, cr, long))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", readme, err)
	}
	out = append(out, Rendered{File: readme, Current: string(cur), Want: want})
	// The scale document is rendered where it exists beside the README (a README alone is enough).
	scale := filepath.Join(filepath.Dir(readme), ScaleDoc)
	cur, err = os.ReadFile(scale)
	if errors.Is(err, os.ErrNotExist) {
		return out, nil
	}
	if err != nil {
		return nil, err
	}
	if want, err = Splice(string(cur), ScaleSections(long)); err != nil {
		return nil, fmt.Errorf("%s: %w", scale, err)
	}
	return append(out, Rendered{File: scale, Current: string(cur), Want: want}), nil
}

// Update rewrites what the results in dir determine (see Render) and returns the files it changed.
func Update(readme, dir string) ([]string, error) {
	rs, err := Render(readme, dir)
	if err != nil {
		return nil, err
	}
	var changed []string
	for _, r := range rs {
		if r.Current == r.Want {
			continue
		}
		if err := os.WriteFile(r.File, []byte(r.Want), 0o644); err != nil {
			return changed, err
		}
		changed = append(changed, r.File)
	}
	return changed, nil
}

// FirstDifference describes the first line where a and b differ, for a test's failure message.
func FirstDifference(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := range max(len(al), len(bl)) {
		var x, y string
		if i < len(al) {
			x = al[i]
		}
		if i < len(bl) {
			y = bl[i]
		}
		if x != y || i >= len(al) || i >= len(bl) {
			return fmt.Sprintf("line %d:\n  have %q\n  want %q", i+1, x, y)
		}
	}
	return "no difference"
}
