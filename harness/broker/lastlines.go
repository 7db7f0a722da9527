package broker

import "bytes"

// lastLines returns at most n trailing lines, for error messages.
func lastLines(s string, n int) string {
	s = string(bytes.TrimRight([]byte(s), "\n"))
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == '\n' {
			n--
			if n == 0 {
				return s[i+1:]
			}
		}
	}
	return s
}
