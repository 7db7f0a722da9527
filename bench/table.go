package bench

import (
	"strings"
)

// Table is a Markdown table with a title and notes.
type Table struct {
	Title  string
	Header []string
	Rows   [][]string
	Notes  []string // rendered as a list under the table
}

// AddRow appends a row; missing cells render empty, extra cells are kept.
func (t *Table) AddRow(cells ...string) { t.Rows = append(t.Rows, cells) }

// Markdown renders the table: "### Title", the table, then the notes. Cells have '|' escaped and line
// breaks replaced by spaces, so any text is safe in a cell. Numeric-looking columns are not aligned
// specially: Markdown viewers align them well enough.
func (t *Table) Markdown() string {
	var b strings.Builder
	if t.Title != "" {
		b.WriteString("### ")
		b.WriteString(t.Title)
		b.WriteString("\n\n")
	}
	cols := len(t.Header)
	for _, r := range t.Rows {
		cols = max(cols, len(r))
	}
	if cols == 0 {
		return b.String()
	}
	row := func(cells []string) {
		b.WriteString("|")
		for i := range cols {
			c := ""
			if i < len(cells) {
				c = cell(cells[i])
			}
			b.WriteString(" ")
			b.WriteString(c)
			b.WriteString(" |")
		}
		b.WriteString("\n")
	}
	row(t.Header)
	b.WriteString("|")
	for range cols {
		b.WriteString("---|")
	}
	b.WriteString("\n")
	for _, r := range t.Rows {
		row(r)
	}
	if len(t.Notes) > 0 {
		b.WriteString("\n")
		for _, n := range t.Notes {
			b.WriteString("- ")
			b.WriteString(strings.ReplaceAll(n, "\n", " "))
			b.WriteString("\n")
		}
	}
	return b.String()
}

func cell(s string) string {
	s = strings.ReplaceAll(s, "\r\n", " ")
	s = strings.ReplaceAll(s, "\n", " ")
	return strings.ReplaceAll(s, "|", `\|`)
}
