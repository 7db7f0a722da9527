package bench

import (
	"strings"
	"testing"
)

// The "back after every fault" goal reads the recovery time where the client published and the reconnect
// time where it did not; the tables show both figures in their own columns.
func TestCompareGoalRecoveryOrReconnect(t *testing.T) {
	f := func(x float64) *float64 { return &x }
	vs := []Verdict{
		{Scenario: "down", Client: MQTTAS, Round: 1, QoS: 1, ReconnectMS: f(300), RecoveryMS: f(450)},
		{Scenario: "silent-idle", Client: MQTTAS, Round: 1, QoS: -1, ReconnectMS: f(700)},
		{Scenario: "slow-handler", Client: MQTTAS, Round: 1, QoS: 1, RecoveryMS: f(5000)}, // no heal to be back from
		{Scenario: "down", Client: Paho, Round: 1, QoS: 1, RecoveryMS: f(4000)},
	}
	goal := func(vs []Verdict) Goal {
		for _, g := range compareGoals(vs, DefaultSettings()) {
			if strings.HasPrefix(g.Goal, "recovery ≤ 1 s after every fault that breaks the connection") {
				return g
			}
		}
		t.Fatal("no back-after-a-fault goal")
		return Goal{}
	}
	if g := goal(vs); g.Status != goalMet || g.Measured != "worst 700 ms (silent-idle (round 1)) in 2 runs" {
		t.Fatalf("goal %+v", g)
	}
	vs[0].RecoveryMS = f(1500) // reconnected at once, but the first acknowledgement took 1.5 s
	if g := goal(vs); g.Status != goalMissed || !strings.Contains(g.Measured, "down (round 1): 1500 ms") {
		t.Fatalf("goal %+v", g)
	}
	md := VerdictTable("v", vs).Markdown()
	if !strings.Contains(md, "| detection | reconnect | recovery |") || !strings.Contains(md, "| — | 300 ms | 1500 ms |") {
		t.Fatalf("verdict table:\n%s", md)
	}
}
