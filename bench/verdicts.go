package bench

import (
	"fmt"
	"strings"
)

// Library names the library under a compare client and its version: for the Go clients the build's
// (Machine), for a driver what its hello said.
func (r *CompareReport) Library(client string) string {
	switch client {
	case MQTTAS:
		return "mqttas " + r.Machine.MQTTAS
	case Paho:
		return "paho.mqtt.golang " + r.Machine.Paho
	}
	for _, v := range r.Verdicts {
		if v.Client == client && v.Library != "" {
			return v.Library
		}
	}
	return "unknown (the driver never answered hello)"
}

// verdictMeasures are the rows of MatrixTable under each scenario: a name and the cell of one client's
// runs of it.
var verdictMeasures = []struct {
	name string
	cell func([]Verdict) string
}{
	{"lost", func(vs []Verdict) string { return countCell(vs, func(v Verdict) int { return v.Lost }) }},
	{"false successes", func(vs []Verdict) string { return countCell(vs, func(v Verdict) int { return v.FalseSuccesses }) }},
	{"duplicates", func(vs []Verdict) string { return countCell(vs, func(v Verdict) int { return v.Duplicates }) }},
	{"detection", func(vs []Verdict) string {
		return timeCell(vs, func(v Verdict) *float64 { return v.DetectionMS }, false)
	}},
	{"recovery", func(vs []Verdict) string { return timeCell(vs, Verdict.back, true) }},
}

// countCell sums a count over the runs ("—" when it applies to none); a run that failed or stalled is
// marked, so a zero from a run that did not finish is not read as a clean one.
func countCell(vs []Verdict, f func(Verdict) int) string {
	n := -1
	for _, v := range vs {
		n = addCount(n, f(v))
	}
	return intCell(n) + runMarks(vs)
}

func timeCell(vs []Verdict, f func(Verdict) *float64, partial bool) string {
	var xs []float64
	for _, v := range vs {
		if x := f(v); x != nil {
			xs = append(xs, *x)
		}
	}
	return roundsCell(xs, len(vs), partial) + runMarks(vs)
}

func runMarks(vs []Verdict) string {
	var errs, stalls int
	for _, v := range vs {
		if v.Error != "" {
			errs++
		}
		if v.Stalled {
			stalls++
		}
	}
	var m []string
	if stalls > 0 {
		m = append(m, fmt.Sprintf("STALLED ×%d", stalls))
	}
	if errs > 0 {
		m = append(m, fmt.Sprintf("ERROR ×%d", errs))
	}
	if len(m) == 0 {
		return ""
	}
	return " (" + strings.Join(m, ", ") + ")"
}

// MatrixTable is the verdict table: for each scenario its lost, false successes, duplicates, detection
// and recovery rows, one column per client (counts summed over the rounds, times as median [min–max];
// recovery is the reconnect time where the scenario did not publish).
func (r *CompareReport) MatrixTable() *Table {
	libs := r.Config.Libs
	t := &Table{Title: "Verdicts, one column per client", Header: append([]string{"scenario", "verdict"}, libs...)}
	lib := []string{"", "library"}
	for _, l := range libs {
		lib = append(lib, r.Library(l))
	}
	t.AddRow(lib...)
	for _, sc := range r.Scenarios {
		runs := make([][]Verdict, len(libs))
		for _, v := range r.Verdicts {
			for i, l := range libs {
				if v.Client == l && v.Scenario == sc.Name {
					runs[i] = append(runs[i], v)
				}
			}
		}
		for mi, m := range verdictMeasures {
			row := []string{"", m.name}
			if mi == 0 {
				row[0] = sc.Name
			}
			for _, vs := range runs {
				if len(vs) == 0 {
					row = append(row, "not run")
				} else {
					row = append(row, m.cell(vs))
				}
			}
			t.AddRow(row...)
		}
	}
	t.Notes = []string{"lost: attempted and never delivered, whatever Publish said; false successes: Publish returned nil " +
		"and the message never arrived (— where the scenario's client under test does not publish); duplicates: " +
		"deliveries beyond the first; detection: fault → the client reports the connection lost; recovery: heal → " +
		"the first publication acknowledged after it (heal → reconnected where the client does not publish). " +
		"The verdicts are the harness's, untuned: a library that loses messages under a fault shows it here."}
	return t
}

// Defect is one scenario run in which a client lost, falsely confirmed or duplicated messages, or stalled,
// with the library's version and the evidence.
type Defect struct {
	Client, Library, Scenario string
	Round                     int
	What                      []string
	Evidence                  []string
}

// Defects lists the runs that showed a defect, client by client in the report's order, scenario by
// scenario; a run that failed (Errors) is not one.
func (r *CompareReport) Defects() []Defect {
	var out []Defect
	for _, lib := range r.Config.Libs {
		for _, sc := range r.Scenarios {
			for _, v := range r.Verdicts {
				if v.Client != lib || v.Scenario != sc.Name {
					continue
				}
				if v.Error != "" {
					// Its counts are no verdict on the library: the run is listed under Errors.
					continue
				}
				var what []string
				if v.Lost > 0 {
					what = append(what, fmt.Sprintf("%d lost", v.Lost))
				}
				if v.FalseSuccesses > 0 {
					what = append(what, fmt.Sprintf("%d false successes", v.FalseSuccesses))
				}
				if v.FalseSuccessesWhileDown > 0 {
					what = append(what, fmt.Sprintf("%d of them published while the client knew it was disconnected", v.FalseSuccessesWhileDown))
				}
				if v.SuccessWithoutPuback > 0 {
					what = append(what, fmt.Sprintf("≥ %d successes without a PUBACK", v.SuccessWithoutPuback))
				}
				if v.Duplicates > 0 {
					what = append(what, fmt.Sprintf("%d duplicates", v.Duplicates))
				}
				if v.Stalled {
					what = append(what, "stalled: not back within the scenario's bound")
				}
				if len(what) > 0 {
					out = append(out, Defect{Client: lib, Library: r.Library(lib), Scenario: v.Scenario, Round: v.Round,
						What: what, Evidence: v.Evidence})
				}
			}
		}
	}
	return out
}

// defectsMarkdown renders Defects, each with its evidence as a code block.
func (r *CompareReport) defectsMarkdown() string {
	var b strings.Builder
	b.WriteString("### Defects found, with their evidence\n\n")
	ds := r.Defects()
	if len(ds) == 0 {
		b.WriteString("None: no client lost, falsely confirmed or duplicated a message, or stalled, in any run.\n")
		return b.String()
	}
	for _, d := range ds {
		fmt.Fprintf(&b, "- **%s** (%s), %s, round %d: %s.\n", d.Client, d.Library, d.Scenario, d.Round, strings.Join(d.What, ", "))
		if len(d.Evidence) > 0 {
			b.WriteString("\n  ```\n")
			for _, l := range d.Evidence {
				fmt.Fprintf(&b, "  %s\n", l)
			}
			b.WriteString("  ```\n\n")
		}
	}
	return b.String()
}
