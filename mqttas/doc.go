// Package mqttas is a resilient, non-blocking MQTT 3.1.1 client with the semantics of MicroPython's
// mqtt_as: once connected, it survives network and broker dropouts transparently.
//
// # Guarantees
//
//   - Publish at qos 1 returns only after the broker's PUBACK and never returns a network error. An
//     unacknowledged PUBLISH is re-sent with DUP=1 and the same packet id, ResponseTime apart, up to
//     MaxRepubs times; then the link is declared dead, and after reconnecting the message is sent again
//     with a new packet id and DUP=0. Publications in flight survive any number of outages.
//   - Outages are detected by the socket (errors, EOF: at once), by silence (a PINGREQ every ping
//     interval; the broker is dead after 4 whole intervals without a byte reaching the socket, read or
//     not, so a slow OnMessage neither fakes nor hides it), by a read or write making no progress for
//     ResponseTime, and by the optional network Link (InterfaceLink watches a Linux interface's carrier and
//     addresses, so its loss is an outage as soon as the kernel reports it).
//   - After an outage the client reconnects by itself: the first retry at once, then capped exponential
//     backoff with jitter. Down fires on the outage and Up on the reconnection.
//   - PublishDurable (with Config.Store, e.g. a FileStore) returns once a qos 1 message is fsynced to disk,
//     and the client sends it, in order, until the broker acknowledges it, through outages and, at the next
//     New and Connect with the same store, after crashes and power cuts (with new packet ids): at least once.
//     A full disk is ErrStoreFull and loses nothing stored; a damaged log is recovered past the damage and
//     reported (*RecoveryError). BEHAVIOUR.md §16 says what durable means.
//   - Every connection starts a clean session unless Config.KeepSession is set; then the broker keeps
//     subscriptions and queues qos 1 messages while the client is away, and CONNACK session present is
//     accepted and reported. Config.ResumeSession also resumes, at start-up, the session of an earlier run.
//
// A Config needs only a Server, and a ClientID for a session kept across runs (New refuses KeepSession
// without one): the zero value of every other field is mqtt_as's default, so
//
//	c, err := mqttas.New(mqttas.Config{Server: "broker.local", ClientID: "sensor-7"})
//
// connects with keepalive 60 s, a clean session, ResponseTime 10 s and 4 re-sends of an unacknowledged qos 1
// publication. A negative KeepAlive or MaxRepubs asks for none.
//
// Publish keeps nothing across process restarts. PublishDurable does, through Config.Store (FileStore: an
// fsynced, checksummed log on a local disk): it returns once the message is stored, and the client sends it
// until the broker acknowledges it, again after a crash or a power cut, at the next New and Connect with the
// same store. qos 2 is not supported.
//
// # Two interfaces
//
// The event interface (Config.QueueLen > 0): received messages wait in a Queue that holds exactly
// QueueLen and displaces the oldest beyond that, counting Discards; Up and Down are events to wait on.
// The callback interface (QueueLen 0): OnMessage, OnConnect (once per connection, with a context
// cancelled when it ends) and OnLinkChange.
//
// # Concurrency
//
// Every method is safe for concurrent use. Many goroutines may publish at qos 1 at once, each with its own
// packet id in flight; no lock is held while waiting for an acknowledgement. Cancelling a call's context
// never leaves a partial packet on the wire and never disturbs other callers. An idle connected client
// runs three goroutines (a reader, a writer and a supervisor, each parked on a minimal stack; pings run
// from a timer) and holds no read or write buffer: about 14 KB in all.
//
// # Throughput
//
// Writes coalesce whatever is queued into one system call; with many qos 1 publications in flight the writer
// first lets the publishers that PUBACKs just released queue their next ones (a bounded yield, a few µs), so
// one write carries many. While a stream of small packets arrives, the reader asks the kernel (Linux, plain
// TCP) to wake it once per batch of bytes instead of once per packet, which halves the broker's CPU per
// message of a qos 0 stream; Config.ReadBatchDelay bounds how long the tail of a burst may wait for that
// (1 ms by default; negative turns it off). Only a stream that would fill a batch within that delay is
// batched, so a slower one keeps its latency. The PUBACKs for the messages of one read go
// out in one write.
//
// # Differences from mqtt_as
//
// BEHAVIOUR.md in this module describes what mqtt_as does and is cited as "spec §N" in the code. The port
// fixes mqtt_as's defects (spec §14): CONNACK session present is accepted; a clean EOF is an
// outage at once; an acknowledgement for an unknown or completed packet id is ignored, not an outage;
// SUBACK 0x80 is an error from Subscribe, not an endless reconnect; the queue holds exactly QueueLen;
// reconnection backs off; every packet is framed by its length; lengths are bytes and topics must be
// valid UTF-8; waiting calls are woken by events, not polling; the host is resolved on every reconnect;
// WANOK holds no lock; no event follows a deliberate Disconnect. CLAIMS.md maps each claim of
// BEHAVIOUR.md and each fixed defect to the test that proves it.
package mqttas
