package bench

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/mqttas/mqttas-go/harness/report"
)

// The long soak's figures (make long-soak, bench/results/soak-long.json) render two generated sections:
// a paragraph in the README and a table in docs/scale.md.
const (
	SoakLongFile = "soak-long.json"
	// ScaleDoc is the document, relative to the README's directory, with the long soak's table.
	ScaleDoc        = "docs/scale.md"
	longSoakSection = "long-soak"
	longSoakTable   = "long-soak-table"
	longSoakCommand = "make long-soak"
)

// ReadmeLongSoak is the README's paragraph on the long soak's committed runs.
func ReadmeLongSoak(runs []report.Figures) string {
	var b strings.Builder
	for i, f := range runs {
		if i > 0 {
			b.WriteString("\n")
		}
		fmt.Fprintf(&b, "The committed run of `%s` (%s, seed %d): %s messages published, %s acknowledged, delivered %s "+
			"times in all to the subscribers (%v faults, %v), %d lost, %d unexpected, %s duplicates (qos 1 re-sends "+
			"across faults); verdict %s; peak RSS %.1f MiB; history %s (`%s`, %.1f bytes a message).\n",
			longSoakCommand, f.Started, f.Seed, grouped(f.Messages), grouped(f.Acknowledged), grouped(f.Deliveries),
			f.FaultsInjected, f.WallRun, f.Lost, f.Unexpected, grouped(f.Duplicates), f.Verdict,
			f.PeakRSSBytes/(1<<20), megabytes(f.HistoryBytes), f.HistoryFile, f.BytesPerMessage)
	}
	return b.String()
}

// ScaleLongSoak is docs/scale.md's table of the long soak's committed runs, a column each.
func ScaleLongSoak(runs []report.Figures) string {
	var t Table
	t.Header = []string{"figure"}
	for _, f := range runs {
		t.Header = append(t.Header, fmt.Sprintf("%s (seed %d)", f.Started, f.Seed))
	}
	row := func(name string, cell func(report.Figures) string) {
		r := []string{name}
		for _, f := range runs {
			r = append(r, cell(f))
		}
		t.Rows = append(t.Rows, r)
	}
	row("clients × msg/s each (+ the feeder)", func(f report.Figures) string {
		return fmt.Sprintf("%v × %v (+ %v msg/s)", f.Clients, f.RatePerClient, f.FeedRate)
	})
	row("faults injected, wall time (bound)", func(f report.Figures) string {
		return fmt.Sprintf("%v in %v (%v)", f.FaultsInjected, f.WallRun, f.Duration)
	})
	row("messages published / acknowledged", func(f report.Figures) string {
		return grouped(f.Messages) + " / " + grouped(f.Acknowledged)
	})
	row("deliveries (every subscriber)", func(f report.Figures) string { return grouped(f.Deliveries) })
	row("verdict: lost, unexpected, duplicates", func(f report.Figures) string {
		return fmt.Sprintf("%s: %d, %d, %s", f.Verdict, f.Lost, f.Unexpected, grouped(f.Duplicates))
	})
	row("peak RSS (VmHWM) / peak heap", func(f report.Figures) string {
		return fmt.Sprintf("%.1f MiB / %.1f MiB", f.PeakRSSBytes/(1<<20), f.PeakHeapBytes/(1<<20))
	})
	row("history on disk", func(f report.Figures) string {
		return fmt.Sprintf("%s (`%s`, %.1f bytes a message)", megabytes(f.HistoryBytes), f.HistoryFile, f.BytesPerMessage)
	})
	return t.Markdown() + fmt.Sprintf("\nFrom [`%s/%s`](../%s/%s), written by `%s`.\n", ResultsDir, SoakLongFile, ResultsDir, SoakLongFile, longSoakCommand)
}

// grouped writes n with commas between groups of three digits: 10,000,219.
func grouped(n int) string {
	s := strconv.Itoa(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, d := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(d)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// megabytes writes a size in decimal megabytes, as du -h --si would: 858 MB.
func megabytes(n int64) string { return fmt.Sprintf("%.0f MB", float64(n)/1e6) }
