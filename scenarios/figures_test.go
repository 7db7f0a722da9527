package scenarios

// Figures a spec attaches to its report.

import (
	"strings"
	"time"
)

// qos1Figures are the figures a qos 1 delivery spec attaches to its report.
type qos1Figures struct {
	Client        string   `json:"client"`
	Plan          []string `json:"plan"`
	Seed          uint64   `json:"seed,omitempty"`
	Published     int64    `json:"published"`
	Acked         int64    `json:"acked"`
	Failed        int64    `json:"failed"`
	Lost          int      `json:"lost"`
	Unexpected    int      `json:"unexpected"`
	Duplicates    int      `json:"duplicate_deliveries"`
	Reordered     int      `json:"reordered"`
	Outages       int64    `json:"outages"`
	Reconnects    int64    `json:"reconnects"`
	Repubs        int64    `json:"dup_resends"`
	Renewals      int64    `json:"pid_renewals"`
	Recovery      string   `json:"recovery_after_heal"` // heal → every client had a publication acknowledged (validate.Recovery, slowest)
	RecoveryBound string   `json:"recovery_bound"`      // qos1RecoveryBound of the fleet's configuration
	DeliveryP50   string   `json:"delivery_p50"`
	DeliveryP99   string   `json:"delivery_p99"`
	DeliveryMax   string   `json:"delivery_max"`
	AckLatencyMax string   `json:"ack_latency_max"`
}

// roundAll renders durations to the millisecond, for reports.
func roundAll(ds []time.Duration) string {
	parts := make([]string, len(ds))
	for i, d := range ds {
		parts[i] = d.Round(time.Millisecond).String()
	}
	return strings.Join(parts, " ")
}

// secRound renders durations rounded to milliseconds.
func secRound(ds []time.Duration) []time.Duration {
	out := make([]time.Duration, len(ds))
	for i, d := range ds {
		out[i] = d.Round(time.Millisecond)
	}
	return out
}
