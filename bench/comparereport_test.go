package bench

import (
	"errors"
	"strings"
	"testing"

	"github.com/mqttas/mqttas-go/harness/clients/procclient"
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
			if strings.HasPrefix(g.Goal, "recovery ≤ 1 s after every fault but PUBACK loss") {
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

// The verdict table has one column per client, five rows per scenario, and the library of each client;
// every run with a defect is listed with its evidence, and a client that did not run a scenario says so.
func TestMatrixAndDefects(t *testing.T) {
	f := func(x float64) *float64 { return &x }
	rep := &CompareReport{
		Config:    CompareConfig{Rounds: 2, Libs: []string{MQTTAS, "python"}},
		Machine:   Machine{MQTTAS: "(devel)"},
		Scenarios: []ScenarioInfo{{Name: "reset"}, {Name: "silent-idle"}},
		Verdicts: []Verdict{
			{Scenario: "reset", Client: MQTTAS, Round: 1, DetectionMS: f(5), RecoveryMS: f(300)},
			{Scenario: "reset", Client: MQTTAS, Round: 2, DetectionMS: f(7), RecoveryMS: f(500)},
			{Scenario: "reset", Client: "python", Round: 1, Library: "paho-mqtt 1.6.1", Lost: 3, FalseSuccesses: 3,
				Duplicates: 1, DetectionMS: f(9), Evidence: []string{"lost (3 in all), the first: pub-python/cmp/pub-python#17 never delivered"}},
			{Scenario: "reset", Client: "python", Round: 2, Library: "paho-mqtt 1.6.1", Stalled: true},
			{Scenario: "silent-idle", Client: MQTTAS, Round: 1, FalseSuccesses: -1, ReconnectMS: f(700)},
			// A run whose driver failed: its losses are no verdict on the library.
			{Scenario: "silent-idle", Client: "python", Round: 1, Lost: 40, Error: "the client failed: ..."},
		},
	}
	md := rep.MatrixTable().Markdown()
	for _, want := range []string{
		"| scenario | verdict | mqttas | python |",
		"|  | library | mqttas (devel) | paho-mqtt 1.6.1 |",
		"| reset | lost | 0 | 3 (STALLED ×1) |",
		"|  | false successes | 0 | 3 (STALLED ×1) |",
		"|  | duplicates | 0 | 1 (STALLED ×1) |",
		"| silent-idle | lost | 0 | 40 (ERROR ×1) |",
		"|  | recovery | 700 ms | — (ERROR ×1) |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("matrix lacks %q:\n%s", want, md)
		}
	}
	ds := rep.Defects()
	if len(ds) != 2 || ds[0].Client != "python" || ds[0].Round != 1 || ds[0].Library != "paho-mqtt 1.6.1" ||
		!strings.Contains(strings.Join(ds[0].What, ", "), "3 lost, 3 false successes, 1 duplicates") || len(ds[0].Evidence) != 1 ||
		ds[1].Round != 2 || ds[1].What[0] != "stalled: not back within the scenario's bound" {
		t.Fatalf("defects %+v", ds)
	}
	// What the drivers make of the settings is said where drivers ran, and only there.
	if !strings.Contains(rep.Markdown(), driverSettings) {
		t.Error("the report of a driver's run does not say what the drivers make of the settings")
	}
	goOnly := &CompareReport{Config: CompareConfig{Rounds: 1, Libs: Libs()}}
	if strings.Contains(goOnly.Markdown(), driverSettings) {
		t.Error("the report of the Go clients alone speaks of the drivers")
	}
	if got := rep.defectsMarkdown(); !strings.Contains(got, "- **python** (paho-mqtt 1.6.1), reset, round 1: 3 lost") ||
		!strings.Contains(got, "pub-python/cmp/pub-python#17 never delivered") {
		t.Fatalf("defects section:\n%s", got)
	}
}

func TestClientFailure(t *testing.T) {
	de := &procclient.DriverError{Driver: "python", Line: 31, Text: "Traceback", Err: procclient.ErrProtocol,
		Stderr: "Traceback (most recent call last):\n  File \"driver.py\"\nKeyError: 'x'\n"}
	got := clientFailure(errors.Join(errors.New("observer: closed"), de))
	want := `the client failed: procclient: driver python: stdout line 31 "Traceback": procclient: driver broke the protocol; its stderr ends: KeyError: 'x'`
	if got != want {
		t.Fatalf("clientFailure = %q, want %q", got, want)
	}
	de.Stderr = ""
	if got := clientFailure(de); strings.Contains(got, "stderr") {
		t.Fatalf("clientFailure without stderr = %q", got)
	}
}
