package ledger

// QueueLimits are a broker's per-client queue limits (mosquitto's
// max_queued_messages; 0 = no limit). They let a test state how many messages
// the broker itself is allowed to drop, so that a deliberate overflow is not
// reported as client loss (see Ledger.ExpectDrops).
type QueueLimits struct {
	MaxQueued int
}

// OfflineDrops returns how many of n QoS 1 messages published while a
// persistent subscriber was offline the broker discards. Mosquitto 2.0 keeps
// the oldest MaxQueued messages for an offline client and silently drops the
// newer ones; its in-flight window does not add to that while the client is
// offline (checked against mosquitto 2.0.11 by
// TestOfflineBacklogMatchesMosquitto in harness/observer).
func (q QueueLimits) OfflineDrops(n int) int {
	if q.MaxQueued <= 0 || n <= q.MaxQueued {
		return 0
	}
	return n - q.MaxQueued
}
