package mqttas

import (
	"errors"
	"fmt"
)

// Errors that calls return. Test with errors.Is; ConnackError and ProtocolError also work with errors.As.
var (
	// ErrClosed: the client was closed.
	ErrClosed = errors.New("mqttas: client closed")
	// ErrNotConnected: the call needs a connection that was made with Connect and not ended by Disconnect.
	ErrNotConnected = errors.New("mqttas: not connected")
	// ErrDisconnected: Disconnect was called while the call waited; the call did not complete.
	ErrDisconnected = fmt.Errorf("%w: disconnected by the application", ErrNotConnected)
	// ErrInvalidTopic: a topic name or filter breaks MQTT 3.1.1 §4.7. Nothing was sent.
	ErrInvalidTopic = errors.New("mqttas: invalid topic")
	// ErrInvalidQoS: qos is not 0 or 1 (qos 2 is not supported). Nothing was sent.
	ErrInvalidQoS = errors.New("mqttas: invalid qos")
	// ErrPacketTooLarge: the packet would exceed Config.MaxPacketSize. Nothing was sent.
	ErrPacketTooLarge = errors.New("mqttas: packet too large")
	// ErrInvalidConfig: New rejected the configuration.
	ErrInvalidConfig = errors.New("mqttas: invalid config")
	// ErrProtocol: the broker sent a malformed or unexpected packet (see *ProtocolError).
	ErrProtocol = errors.New("mqttas: protocol error")
	// ErrConnectionRefused: the broker refused the connection (see *ConnackError).
	ErrConnectionRefused = errors.New("mqttas: connection refused")
	// ErrSubscriptionRefused: the broker answered a SUBSCRIBE with return code 0x80.
	ErrSubscriptionRefused = errors.New("mqttas: subscription refused by the broker")
	// ErrTimeout: the broker did not answer within ResponseTime.
	ErrTimeout = errors.New("mqttas: no response from the broker within ResponseTime")
	// ErrLinkDown: the network Link is down or could not be brought up.
	ErrLinkDown = errors.New("mqttas: network link down")
)

// ConnackError is a CONNACK with a non-zero return code: the broker refused the connection.
type ConnackError struct {
	Code byte
}

var connackReasons = map[byte]string{
	1: "unacceptable protocol version",
	2: "identifier rejected",
	3: "server unavailable",
	4: "bad user name or password",
	5: "not authorised",
}

func (e *ConnackError) Error() string {
	reason, ok := connackReasons[e.Code]
	if !ok {
		reason = "unknown return code"
	}
	return fmt.Sprintf("mqttas: connection refused by the broker: %s (CONNACK code %d)", reason, e.Code)
}

// Is makes every *ConnackError match ErrConnectionRefused.
func (e *ConnackError) Is(target error) bool { return target == ErrConnectionRefused }

func invalidConfig(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidConfig, fmt.Sprintf(format, args...))
}
