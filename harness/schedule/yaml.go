package schedule

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/mqttas/mqttas-go/harness/faults"
)

// MaxTraceSize bounds the trace files Load reads.
const MaxTraceSize = 4 << 20

// Load reads and validates the trace at path. A trace without a name takes its file's base name. Errors
// name the file, the line and the field ("traces/x.yaml:12: faults[2].duration: ...").
func Load(path string) (*Schedule, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("trace: %w", err)
	}
	if info.Size() > MaxTraceSize {
		return nil, fmt.Errorf("trace %s: %d bytes is larger than %d", path, info.Size(), MaxTraceSize)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("trace: %w", err)
	}
	s, err := parse(b, path)
	if err != nil {
		return nil, err
	}
	if s.Name == "" {
		s.Name = strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	}
	return s, nil
}

// Parse reads and validates a trace (format version 1):
//
//	version: 1
//	name: edge-of-wifi
//	description: a device at the edge of WiFi range
//	faults:
//	  - {at: 5s, fault: blackhole, duration: 3s}
//	  - {at: 9s, fault: latency, duration: 4s, params: {latency: 800ms}, repeat: {every: 10s, count: 3}}
//
// Every problem is reported, each with its line and field, in a *ValidationError.
func Parse(b []byte) (*Schedule, error) { return parse(b, "") }

func parse(b []byte, source string) (*Schedule, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		// yaml.v3's syntax errors already say "yaml: line N: ...".
		if source != "" {
			return nil, fmt.Errorf("%s: %w", source, err)
		}
		return nil, err
	}
	var p problems
	s := &Schedule{}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		p.add(1, "version", "missing: the trace is empty (start it with version: %d)", Version)
		return nil, p.err(source)
	}
	root := deref(doc.Content[0])
	if root.Kind != yaml.MappingNode {
		p.add(root.Line, "(top level)", "want a mapping with version, name, description and faults; got %s", kindName(root))
		return nil, p.err(source)
	}
	seen := map[string]bool{}
	eachField(&p, root, "", func(key string, k, v *yaml.Node) {
		switch key {
		case "version":
			if v.Kind != yaml.ScalarNode || v.Value != strconv.Itoa(Version) {
				p.add(v.Line, "version", "%s is not supported: this reader knows version %d", show(v), Version)
			}
		case "name":
			s.Name = scalar(&p, v, "name")
		case "description":
			s.Description = strings.TrimSpace(scalar(&p, v, "description"))
		case "faults":
			s.Faults = parseFaults(&p, v)
		default:
			p.add(k.Line, key, "unknown field (want version, name, description, faults)")
		}
		seen[key] = true
	})
	if !seen["version"] {
		p.add(root.Line, "version", "missing: write version: %d", Version)
	}
	if !seen["faults"] {
		p.add(root.Line, "faults", "missing: list the faults (faults: [] for none)")
	}
	s.expandInto(&p)
	if err := p.err(source); err != nil {
		return nil, err
	}
	return s, nil
}

func parseFaults(p *problems, v *yaml.Node) []Entry {
	if v.Kind == yaml.ScalarNode && v.Tag == "!!null" {
		return nil
	}
	if v.Kind != yaml.SequenceNode {
		p.add(v.Line, "faults", "want a list of faults; got %s", kindName(v))
		return nil
	}
	entries := make([]Entry, 0, len(v.Content))
	for i, n := range v.Content {
		n = deref(n)
		field := func(f string) string { return fmt.Sprintf("faults[%d].%s", i, f) }
		e := Entry{Line: n.Line, lines: map[string]int{}}
		var name string
		var params map[string]string
		before := len(p.errs)
		if n.Kind != yaml.MappingNode {
			p.add(n.Line, fmt.Sprintf("faults[%d]", i), "want a mapping with at, fault, duration, params, repeat; got %s", kindName(n))
			e.broken = true
			entries = append(entries, e) // keep the indices of the entries after it
			continue
		}
		eachField(p, n, fmt.Sprintf("faults[%d]", i), func(key string, k, v *yaml.Node) {
			e.lines[key] = v.Line
			switch key {
			case "at":
				e.At = duration(p, v, field("at"))
			case "fault":
				name = scalar(p, v, field("fault"))
			case "duration":
				e.Duration = duration(p, v, field("duration"))
			case "params":
				params = parseParams(p, &e, v, field("params"))
			case "repeat":
				e.Repeat = parseRepeat(p, &e, v, field("repeat"))
			default:
				p.add(k.Line, field(key), "unknown field (want at, fault, duration, params, repeat)")
			}
		})
		if _, ok := e.lines["at"]; !ok {
			p.add(n.Line, field("at"), "missing: when the fault starts, e.g. at: 5s")
		}
		if _, ok := e.lines["fault"]; !ok {
			p.add(n.Line, field("fault"), "missing: which fault, e.g. fault: blackhole")
		}
		e.broken = len(p.errs) > before
		if !e.broken && name != "" {
			e.Fault, e.badFault = makeFault(p, &e, name, params, field)
		}
		entries = append(entries, e)
	}
	return entries
}

// makeFault makes the entry's fault from its name and parameters, reporting a problem at the parameter's
// line or the name's; bad is true when it could not.
func makeFault(p *problems, e *Entry, name string, params map[string]string, field func(string) string) (f faults.Fault, bad bool) {
	f, err := faults.Parse(name, params)
	var pe *faults.ParamError
	switch {
	case errors.As(err, &pe):
		p.add(e.line("params."+pe.Param), field("params."+pe.Param), "%s", pe.Reason)
	case err != nil:
		p.add(e.line("fault"), field("fault"), "%v", err)
	default:
		return f, false
	}
	return nil, true
}

func parseParams(p *problems, e *Entry, v *yaml.Node, path string) map[string]string {
	if v.Kind == yaml.ScalarNode && v.Tag == "!!null" {
		return nil
	}
	if v.Kind != yaml.MappingNode {
		p.add(v.Line, path, "want a mapping of parameter names to values; got %s", kindName(v))
		return nil
	}
	m := map[string]string{}
	eachField(p, v, path, func(key string, _, val *yaml.Node) {
		e.lines["params."+key] = val.Line
		m[key] = scalar(p, val, path+"."+key)
	})
	return m
}

func parseRepeat(p *problems, e *Entry, v *yaml.Node, path string) *Repeat {
	if v.Kind != yaml.MappingNode {
		p.add(v.Line, path, "want {every: <duration>, count: <times in all>}; got %s", kindName(v))
		return nil
	}
	r := &Repeat{}
	eachField(p, v, path, func(key string, k, val *yaml.Node) {
		e.lines["repeat."+key] = val.Line
		switch key {
		case "every":
			r.Every = duration(p, val, path+".every")
		case "count":
			s := scalar(p, val, path+".count")
			n, err := strconv.Atoi(s)
			if err != nil && s != "" {
				p.add(val.Line, path+".count", "%s is not a whole number", show(val))
			}
			r.Count = n
		default:
			p.add(k.Line, path+"."+key, "unknown field (want every, count)")
		}
	})
	for _, key := range []string{"every", "count"} {
		if _, ok := e.lines["repeat."+key]; !ok {
			p.add(v.Line, path+"."+key, "missing")
		}
	}
	return r
}

// eachField walks a mapping's keys in order, rejecting non-scalar and duplicate keys.
func eachField(p *problems, m *yaml.Node, path string, f func(key string, k, v *yaml.Node)) {
	seen := map[string]int{}
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := deref(m.Content[i]), deref(m.Content[i+1])
		name := k.Value
		if path != "" {
			name = path + "." + k.Value
		}
		if k.Kind != yaml.ScalarNode {
			p.add(k.Line, path, "a key must be a plain name; got %s", kindName(k))
			continue
		}
		if l, dup := seen[k.Value]; dup {
			p.add(k.Line, name, "given twice (first on line %d)", l)
			continue
		}
		seen[k.Value] = k.Line
		f(k.Value, k, v)
	}
}

func scalar(p *problems, v *yaml.Node, path string) string {
	if v.Kind != yaml.ScalarNode {
		p.add(v.Line, path, "want a single value; got %s", kindName(v))
		return ""
	}
	return v.Value
}

func duration(p *problems, v *yaml.Node, path string) time.Duration {
	s := scalar(p, v, path)
	if v.Kind != yaml.ScalarNode {
		return 0
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		hint := ""
		if _, nerr := strconv.ParseFloat(s, 64); nerr == nil {
			hint = fmt.Sprintf(" (no unit: write %ss or %sms)", s, s)
		}
		p.add(v.Line, path, "%s is not a duration like 5s, 1m30s or 250ms%s", show(v), hint)
		return 0
	}
	return d
}

func deref(n *yaml.Node) *yaml.Node {
	for range 8 { // aliases of aliases, bounded
		if n.Kind != yaml.AliasNode || n.Alias == nil {
			return n
		}
		n = n.Alias
	}
	return n
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return show(n)
	default:
		return "nothing"
	}
}

func show(n *yaml.Node) string {
	if n.Kind != yaml.ScalarNode {
		return kindName(n)
	}
	return strconv.Quote(n.Value)
}

// The file form, for Marshal: struct fields keep the documented key order.
type fileTrace struct {
	Version     int         `yaml:"version"`
	Name        string      `yaml:"name,omitempty"`
	Description string      `yaml:"description,omitempty"`
	Faults      []fileEntry `yaml:"faults"`
}

type fileEntry struct {
	At       string         `yaml:"at"`
	Fault    string         `yaml:"fault"`
	Duration string         `yaml:"duration,omitempty"`
	Params   map[string]any `yaml:"params,omitempty,flow"`
	Repeat   *fileRepeat    `yaml:"repeat,omitempty,flow"`
}

type fileRepeat struct {
	Every string `yaml:"every"`
	Count int    `yaml:"count"`
}

// Marshal validates s and writes it as a version 1 trace that Parse reads back to the same schedule.
func Marshal(s *Schedule) ([]byte, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	ft := fileTrace{Version: Version, Name: s.Name, Description: strings.TrimSpace(s.Description),
		Faults: make([]fileEntry, len(s.Faults))}
	for i, e := range s.Faults {
		fe := fileEntry{At: formatDuration(e.At), Fault: e.Fault.Name()}
		if e.Duration > 0 {
			fe.Duration = formatDuration(e.Duration)
		}
		for k, v := range faults.Params(e.Fault) {
			if fe.Params == nil {
				fe.Params = map[string]any{}
			}
			// Whole numbers unquoted (rate: 16, not rate: "16"); Parse reads either as the same text.
			if n, err := strconv.Atoi(v); err == nil && strconv.Itoa(n) == v {
				fe.Params[k] = n
			} else {
				fe.Params[k] = v
			}
		}
		if e.Repeat != nil {
			fe.Repeat = &fileRepeat{Every: formatDuration(e.Repeat.Every), Count: e.Repeat.Count}
		}
		ft.Faults[i] = fe
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(ft); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// formatDuration writes whole seconds as "90s" rather than "1m30s", and the rest as time.Duration does.
func formatDuration(d time.Duration) string {
	if d != 0 && d%time.Second == 0 {
		return strconv.FormatInt(int64(d/time.Second), 10) + "s"
	}
	return d.String()
}

// Save writes s as a trace file at path.
func Save(path string, s *Schedule) error {
	b, err := Marshal(s)
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}
