package mqttas

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// checkString applies MQTT 3.1.1 §1.5.3 to a UTF-8 string field: at most 65535 bytes, well-formed UTF-8,
// no U+0000. Lengths are bytes, never characters (mqtt_as counted characters, issue #178).
func checkString(what, s string) error {
	if len(s) > 65535 {
		return fmt.Errorf("%s is %d bytes, over the 65535 an MQTT string holds", what, len(s))
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("%s is not valid UTF-8", what)
	}
	if strings.IndexByte(s, 0) >= 0 {
		return fmt.Errorf("%s contains U+0000", what)
	}
	return nil
}

// CheckTopic reports whether topic is a valid topic name to publish to (MQTT 3.1.1 §4.7): not empty, a valid
// MQTT string, no wildcards. The error wraps ErrInvalidTopic. Publish and Config.Will apply it.
func CheckTopic(topic string) error {
	if topic == "" {
		return fmt.Errorf("%w: the topic is empty", ErrInvalidTopic)
	}
	if err := checkString("the topic", topic); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidTopic, err)
	}
	if strings.ContainsAny(topic, "+#") {
		return fmt.Errorf("%w: %q: a topic to publish to cannot contain the wildcards + or #", ErrInvalidTopic, topic)
	}
	return nil
}

// CheckFilter reports whether filter is a valid topic filter to subscribe to (MQTT 3.1.1 §4.7): not empty, a
// valid MQTT string, '#' only as the whole last level, '+' only as a whole level. The error wraps
// ErrInvalidTopic. Subscribe and Unsubscribe apply it.
func CheckFilter(filter string) error {
	if filter == "" {
		return fmt.Errorf("%w: the topic filter is empty", ErrInvalidTopic)
	}
	if err := checkString("the topic filter", filter); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidTopic, err)
	}
	levels := strings.Split(filter, "/")
	for i, l := range levels {
		if strings.Contains(l, "#") && (l != "#" || i != len(levels)-1) {
			return fmt.Errorf("%w: %q: '#' must be the whole last level of a filter", ErrInvalidTopic, filter)
		}
		if strings.Contains(l, "+") && l != "+" {
			return fmt.Errorf("%w: %q: '+' must be a whole level of a filter", ErrInvalidTopic, filter)
		}
	}
	return nil
}

func checkQoS(qos byte) error {
	if qos > 1 {
		return fmt.Errorf("%w: %d (only 0 and 1 are supported)", ErrInvalidQoS, qos)
	}
	return nil
}
