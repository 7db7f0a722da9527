package mqttas

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestCheckTopic(t *testing.T) {
	for _, good := range []string{"a", "a/b", "/", "a//b", "ü/€", "$SYS/x", strings.Repeat("x", 65535)} {
		if err := CheckTopic(good); err != nil {
			t.Errorf("topic %.20q: %v", good, err)
		}
	}
	for _, bad := range []string{"", "a/+", "+", "a/#", "#", "a#b", "a\x00b", "\xff", string([]byte{0xff, 0xfe}), strings.Repeat("x", 65536)} {
		if err := CheckTopic(bad); !errors.Is(err, ErrInvalidTopic) {
			t.Errorf("topic %.20q: got %v, want ErrInvalidTopic", bad, err)
		}
	}
}

func TestCheckFilter(t *testing.T) {
	for _, good := range []string{"#", "+", "a/+/b", "a/#", "+/+", "+/+/#", "/#", "/+/", "a", "$SYS/#"} {
		if err := CheckFilter(good); err != nil {
			t.Errorf("filter %q: %v", good, err)
		}
	}
	for _, bad := range []string{"", "a#", "#/a", "a/#/b", "a/b+", "+a", "a/++", "##", "a\x00", "\xff", strings.Repeat("x", 65536)} {
		if err := CheckFilter(bad); !errors.Is(err, ErrInvalidTopic) {
			t.Errorf("filter %.20q: got %v, want ErrInvalidTopic", bad, err)
		}
	}
}

// FuzzTopicChecks compares CheckTopic and CheckFilter with a character-by-character reading of §4.7 and
// checks that every topic name is also a filter (one that matches only itself).
func FuzzTopicChecks(f *testing.F) {
	for _, s := range []string{"", "a/b", "#", "a/#", "a/#/b", "+", "+/x/+", "a+", "/", "ü", "\xff", "a\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		topicErr, filterErr := CheckTopic(s), CheckFilter(s)
		for _, err := range []error{topicErr, filterErr} {
			if err != nil && !errors.Is(err, ErrInvalidTopic) {
				t.Fatalf("%q: %v does not wrap ErrInvalidTopic", s, err)
			}
		}
		str := s != "" && len(s) <= 65535 && utf8.ValidString(s) && !strings.ContainsRune(s, 0)
		if want := str && !strings.ContainsAny(s, "+#"); (topicErr == nil) != want {
			t.Fatalf("CheckTopic(%q) = %v, want valid %t", s, topicErr, want)
		}
		if want := str && wildcardsWhole(s); (filterErr == nil) != want {
			t.Fatalf("CheckFilter(%q) = %v, want valid %t", s, filterErr, want)
		}
		if topicErr == nil && filterErr != nil {
			t.Fatalf("topic name %q is not a valid filter: %v", s, filterErr)
		}
	})
}

// wildcardsWhole reports whether every '+' in s stands between level separators (or an end) and a '#' only
// ends s, right after a separator or alone.
func wildcardsWhole(s string) bool {
	for i := 0; i < len(s); i++ {
		startsLevel := i == 0 || s[i-1] == '/'
		endsLevel := i == len(s)-1 || s[i+1] == '/'
		switch s[i] {
		case '+':
			if !startsLevel || !endsLevel {
				return false
			}
		case '#':
			if !startsLevel || i != len(s)-1 {
				return false
			}
		}
	}
	return true
}
