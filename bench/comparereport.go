package bench

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/mqttas/mqttas-go/harness/clients/procclient"
	"github.com/mqttas/mqttas-go/harness/faults"
)

// GapCheck is one of paho's known gaps (from reading its code and its issue tracker), checked against what a scenario
// actually showed, with mqttas in the same scenario for contrast.
type GapCheck struct {
	Gap      string `json:"gap"`
	Scenario string `json:"scenario"`
	Status   string `json:"status"` // observed, not observed, not run
	Paho     string `json:"paho"`
	MQTTAS   string `json:"mqttas"`
}

type gapDef struct {
	gap, scenario string
	// judge returns whether the verdict shows the gap, and the evidence.
	judge func(Verdict) (bool, string)
}

func gapDefs() []gapDef {
	return []gapDef{
		{"E1 (#630): qos 0 publications during a reconnect are dropped but reported as sent", "qos0-down",
			func(v Verdict) (bool, string) {
				ev := fmt.Sprintf("%d of %d qos 0 publications returned success and never arrived, %d of them published while the client knew it was disconnected",
					v.FalseSuccesses, v.Acked, v.FalseSuccessesWhileDown)
				return v.FalseSuccessesWhileDown > 0, ev
			}},
		{"E2 (#563, #458): after a reconnect a stored qos 1 publication reports success before its PUBACK", "drop-pubacks+reset",
			func(v Verdict) (bool, string) {
				if v.SuccessWithoutPuback < 0 {
					return false, "not measurable (tap overflowed)"
				}
				return v.SuccessWithoutPuback > 0, fmt.Sprintf("≥ %d qos 1 publications returned success without any PUBACK reaching the client; %d never delivered",
					v.SuccessWithoutPuback, v.FalseSuccesses)
			}},
		{"no in-session re-send: a lost PUBACK stalls qos 1 until the connection drops", "drop-pubacks",
			func(v Verdict) (bool, string) {
				if v.Stalled {
					return true, "stalled: no publication completed after the PUBACKs flowed again"
				}
				return false, "recovered " + optMS(v.RecoveryMS) + " after the PUBACKs flowed again"
			}},
		{"E5 (#208, #430, #453, #593): a slow message handler blocks keepalive → false outage (handler 1.5 s < KeepAlive)", "slow-handler",
			slowJudge},
		{"E5, handler 3 s > KeepAlive", "slow-handler-3s", slowJudge},
		{"baseline §5.1: a qos 1 token fails (connection reset) although the message is delivered", "reset",
			func(v Verdict) (bool, string) {
				return v.ErrorButDelivered > 0, fmt.Sprintf("%d Publish errors for messages that were delivered", v.ErrorButDelivered)
			}},
		{"a blackhole is detected only after KeepAlive + PingTimeout (+ tick)", "silent-idle",
			func(v Verdict) (bool, string) {
				return v.DetectionMS != nil && *v.DetectionMS > 3000, "detected " + optMS(v.DetectionMS) + " after the fault"
			}},
		{"recovery waits for the 1 s retry interval even when the heal comes during a pending connect", "blackhole",
			func(v Verdict) (bool, string) {
				return v.RecoveryMS != nil && *v.RecoveryMS >= 900, "recovered " + optMS(v.RecoveryMS) + " after the heal"
			}},
	}
}

func slowJudge(v Verdict) (bool, string) {
	return v.Outages > 0, fmt.Sprintf("%d connection loss(es) reported while only the handler was slow; %d duplicate deliveries",
		v.Outages, v.Duplicates)
}

func optMS(x *float64) string {
	if x == nil {
		return "never"
	}
	return fmtMS(*x)
}

// gapChecks judges paho's known gaps over every round: a gap is observed when any round shows it.
func gapChecks(vs []Verdict) []GapCheck {
	judge := func(g gapDef, lib string) (runs int, seen bool, evidence string) {
		var ev []string
		for _, v := range vs {
			if v.Scenario != g.scenario || v.Client != lib || v.Error != "" {
				continue
			}
			runs++
			s, e := g.judge(v)
			seen = seen || s
			ev = append(ev, fmt.Sprintf("round %d: %s", v.Round, e))
		}
		if len(ev) == 1 {
			ev[0] = ev[0][strings.Index(ev[0], ": ")+2:]
		}
		return runs, seen, strings.Join(ev, "; ")
	}
	var out []GapCheck
	for _, g := range gapDefs() {
		c := GapCheck{Gap: g.gap, Scenario: g.scenario, Status: "not run"}
		if n, seen, ev := judge(g, Paho); n > 0 {
			c.Status, c.Paho = "not observed", ev
			if seen {
				c.Status = "observed"
			}
		}
		if n, seen, ev := judge(g, MQTTAS); n > 0 {
			c.MQTTAS = ev
			if seen {
				c.MQTTAS = "SAME GAP: " + ev
			}
		}
		out = append(out, c)
	}
	return out
}

// PubackLossSlack is what the PUBACK-loss recovery goal allows beyond ResponseTime: the re-send's round
// trip through the link and the broker, and the scheduling delays of a loaded machine.
const PubackLossSlack = 250 * time.Millisecond

// dropsPubacks reports whether a scenario's fault drops PUBACKs to the client. While only PUBACKs are
// lost the connection stays valid, so a client learns that the fault has healed only from the PUBACK of
// its next DUP re-send, which comes up to ResponseTime after the heal.
func dropsPubacks(scenario string) bool {
	return strings.HasPrefix(scenario, faults.DropPubacks{}.Name())
}

// compareGoals judges mqttas against the delivery and recovery goals over every scenario and round. A
// goal is met only when at least one run shows it and no run it applies to failed; s gives the
// ResponseTime that bounds recovery after PUBACK loss.
func compareGoals(vs []Verdict, s Settings) []Goal {
	type check struct {
		goal      string
		applies   func(Verdict) bool
		violation func(Verdict) string // "" when the run met the goal
	}
	all := func(Verdict) bool { return true }
	qos0 := func(v Verdict) string {
		if v.QoS == 0 {
			return " (qos 0, at most once: lost at the cut, see the notes)"
		}
		return ""
	}
	qos1 := func(v Verdict) bool { return v.QoS == 1 }
	recovers := func(v Verdict) bool { return !strings.HasPrefix(v.Scenario, "slow-handler") }
	recoveryOver := func(bound time.Duration) func(Verdict) string {
		return func(v Verdict) string {
			back := v.back()
			switch {
			case v.Stalled || back == nil:
				return "never recovered"
			case *back > ms(bound):
				return fmtMS(*back)
			}
			return ""
		}
	}
	pubackBound := s.ResponseTimeout + PubackLossSlack
	checks := []check{
		{"0 messages lost in every compare scenario", all, func(v Verdict) string {
			return cond(v.Lost > 0, fmt.Sprint(v.Lost)+qos0(v))
		}},
		{"0 false successes in every compare scenario", func(v Verdict) bool { return v.FalseSuccesses >= 0 }, func(v Verdict) string {
			return cond(v.FalseSuccesses > 0, fmt.Sprint(v.FalseSuccesses)+qos0(v))
		}},
		{"qos 1: 0 lost and 0 false successes in every scenario", qos1, func(v Verdict) string {
			return cond(v.Lost > 0 || v.FalseSuccesses > 0, fmt.Sprintf("%d lost, %d false successes", v.Lost, max(v.FalseSuccesses, 0)))
		}},
		{"qos 0: no publication accepted while the client knew it was disconnected is lost (paho's E1)",
			func(v Verdict) bool { return v.QoS == 0 }, func(v Verdict) string {
				return cond(v.FalseSuccessesWhileDown > 0, fmt.Sprint(v.FalseSuccessesWhileDown))
			}},
		{"no success reported without a PUBACK", func(v Verdict) bool { return v.SuccessWithoutPuback >= 0 }, func(v Verdict) string {
			return cond(v.SuccessWithoutPuback > 0, fmt.Sprintf("≥ %d", v.SuccessWithoutPuback))
		}},
		{"never stalls: publishing (or the subscription) resumes after every fault", all, func(v Verdict) string {
			return cond(v.Stalled, "stalled")
		}},
		{"no false outage under a slow handler", func(v Verdict) bool { return strings.HasPrefix(v.Scenario, "slow-handler") },
			func(v Verdict) string { return cond(v.Outages > 0, fmt.Sprintf("%d outage(s)", v.Outages)) }},
		{"recovery ≤ 1 s after every fault but PUBACK loss: those that break the connection and those that only " +
			"delay, slow or pause it (heal → a publication acknowledged; " +
			"without traffic, the reconnect: heal → connected again)",
			func(v Verdict) bool { return recovers(v) && !dropsPubacks(v.Scenario) }, recoveryOver(time.Second)},
		{fmt.Sprintf("recovery after PUBACK loss ≤ ResponseTime + %v = %v (heal → publishing again): a lost PUBACK "+
			"is noticed only when ResponseTime passes without it, so the DUP re-send that completes comes up to "+
			"ResponseTime after the heal", PubackLossSlack, pubackBound),
			func(v Verdict) bool { return dropsPubacks(v.Scenario) }, recoveryOver(pubackBound)},
	}
	var gs []Goal
	for _, c := range checks {
		n, failed := 0, 0
		var bad []string
		worst, worstWhere := -1.0, ""
		for _, v := range vs {
			if v.Client != MQTTAS || !c.applies(v) {
				continue
			}
			if v.Error != "" {
				failed++
				continue
			}
			n++
			where := fmt.Sprintf("%s (round %d)", v.Scenario, v.Round)
			if x := c.violation(v); x != "" {
				bad = append(bad, where+": "+x)
			}
			if back := v.back(); back != nil && *back > worst {
				worst, worstWhere = *back, where
			}
		}
		g := Goal{Goal: c.goal, Status: goalUnknown}
		switch {
		case len(bad) > 0:
			g.Measured, g.Status = strings.Join(bad, "; "), goalMissed
		case n == 0:
		case failed > 0:
			g.Measured = fmt.Sprintf("none in %d runs, but %d runs failed (see Errors)", n, failed)
		default:
			g.Measured, g.Status = fmt.Sprintf("none in %d runs", n), goalMet
		}
		if g.Status != goalMissed && strings.HasPrefix(c.goal, "recovery") && worst >= 0 {
			g.Measured = fmt.Sprintf("worst %s (%s) in %d runs", fmtMS(worst), worstWhere, n)
			if failed > 0 {
				g.Measured += fmt.Sprintf(", but %d runs failed (see Errors)", failed)
			}
		}
		gs = append(gs, g)
	}
	return gs
}

func cond(bad bool, what string) string {
	if bad {
		return what
	}
	return ""
}

func intCell(x int) string {
	if x < 0 {
		return "—"
	}
	return fmt.Sprint(x)
}

func verdictNotes(v Verdict) []string {
	var notes []string
	if v.Error != "" {
		notes = append(notes, "ERROR: "+v.Error)
	}
	if v.Stalled {
		notes = append(notes, "STALLED")
	}
	if v.SuccessWithoutPuback > 0 {
		notes = append(notes, fmt.Sprintf("≥ %d successes without a PUBACK", v.SuccessWithoutPuback))
	}
	if v.FalseSuccessesWhileDown > 0 {
		notes = append(notes, fmt.Sprintf("%d false successes published while the client knew it was disconnected", v.FalseSuccessesWhileDown))
	}
	switch {
	case v.SuccessNeverSent > 0:
		notes = append(notes, fmt.Sprintf("≥ %d successes never reached the link (dropped in the client, or written just as the link closed the connection)", v.SuccessNeverSent))
	case v.SuccessNeverSent == 0 && v.FalseSuccesses > 0:
		notes = append(notes, "every false success reached the link: lost behind it when the connection was cut")
	}
	if v.ErrorButDelivered > 0 {
		notes = append(notes, fmt.Sprintf("%d Publish errors although delivered", v.ErrorButDelivered))
	}
	if v.AbandonedDelivered > 0 {
		notes = append(notes, fmt.Sprintf("%d publications still unfinished at the end (delivered)", v.AbandonedDelivered))
	}
	if v.Reordered > 0 {
		notes = append(notes, fmt.Sprintf("%d reordered", v.Reordered))
	}
	if v.Failed > 0 {
		notes = append(notes, fmt.Sprintf("%d failed (not sent)", v.Failed))
	}
	return append(notes, v.Notes...)
}

// VerdictTable renders the verdicts, one row per scenario, client and round.
func VerdictTable(title string, vs []Verdict) *Table {
	t := &Table{Title: title, Header: []string{"scenario", "round", "client", "attempted", "acked", "lost",
		"FALSE SUCCESSES", "duplicates", "outages", "detection", "reconnect", "recovery", "notes"}}
	for _, v := range vs {
		t.AddRow(v.Scenario, fmt.Sprint(v.Round), v.Client, fmt.Sprint(v.Attempted), fmt.Sprint(v.Acked), intCell(v.Lost),
			intCell(v.FalseSuccesses), fmt.Sprint(v.Duplicates), fmt.Sprint(v.Outages), optMSDash(v.DetectionMS),
			optMSDash(v.ReconnectMS), optMSDash(v.RecoveryMS), strings.Join(verdictNotes(v), "; "))
	}
	return t
}

// ClientTable renders one client's verdicts, one row per scenario: counts summed over the rounds, times as
// median [min–max].
func ClientTable(client string, scenarios []ScenarioInfo, vs []Verdict) *Table {
	t := &Table{Title: "Verdicts: " + client, Header: []string{"scenario", "attempted", "acked", "lost",
		"FALSE SUCCESSES", "duplicates", "outages", "detection", "reconnect", "recovery", "notes"}}
	for _, sc := range scenarios {
		var runs []Verdict
		for _, v := range vs {
			if v.Client == client && v.Scenario == sc.Name {
				runs = append(runs, v)
			}
		}
		if len(runs) == 0 {
			continue
		}
		var att, ack, dup, out int
		lost, fs := -1, -1
		var det, recon, rec []float64
		var notes []string
		for _, v := range runs {
			att, ack, dup, out = att+v.Attempted, ack+v.Acked, dup+v.Duplicates, out+v.Outages
			lost, fs = addCount(lost, v.Lost), addCount(fs, v.FalseSuccesses)
			if v.DetectionMS != nil {
				det = append(det, *v.DetectionMS)
			}
			if v.ReconnectMS != nil {
				recon = append(recon, *v.ReconnectMS)
			}
			if v.RecoveryMS != nil {
				rec = append(rec, *v.RecoveryMS)
			}
			for _, n := range verdictNotes(v) {
				if len(runs) > 1 {
					n = fmt.Sprintf("round %d: %s", v.Round, n)
				}
				notes = append(notes, n)
			}
		}
		t.AddRow(sc.Name, fmt.Sprint(att), fmt.Sprint(ack), intCell(lost), intCell(fs), fmt.Sprint(dup), fmt.Sprint(out),
			roundsCell(det, len(runs), false), roundsCell(recon, len(runs), true), roundsCell(rec, len(runs), true), strings.Join(notes, "; "))
	}
	return t
}

// roundsCell renders the figures of the rounds that had one as median [min–max], "—" for none; with
// partial, it says how many rounds had one when some had none.
func roundsCell(xs []float64, runs int, partial bool) string {
	if len(xs) == 0 {
		return "—"
	}
	cell := Summarize(xs).Format(fmtMS)
	if partial && len(xs) < runs {
		cell += fmt.Sprintf(" (%d of %d rounds)", len(xs), runs)
	}
	return cell
}

// addCount adds counts where -1 means "does not apply".
func addCount(a, b int) int {
	if b < 0 {
		return a
	}
	return max(a, 0) + b
}

func optMSDash(x *float64) string {
	if x == nil {
		return "—"
	}
	return fmtMS(*x)
}

// driverSettings says what the out-of-process clients make of the settings (their drivers in drivers/
// document the details).
const driverSettings = "The drivers (python: paho-mqtt, node: MQTT.js, c: libmosquitto) keep their libraries' own " +
	"resilience settings, as each library's users would configure a long-running program, and take the keepalive " +
	"and the connection attempt bound from the settings above: keepalive in whole seconds (libmosquitto refuses " +
	"less than 5 s, so the C driver's is 5 s); none has a ping timeout of its own (each drops the connection when " +
	"a PINGRESP does not come by the next keepalive), nor a PUBACK timeout with an in-session re-send; a fixed 1 s " +
	"between reconnection attempts (paho-mqtt reconnect_delay_set(1, 1), MQTT.js reconnectPeriod 1000, " +
	"libmosquitto's default); libmosquitto has no connection attempt bound."

func isDriver(lib string) bool {
	return lib == procclient.NamePython || lib == procclient.NameNode || lib == procclient.NameC
}

// Markdown renders the report.
func (r *CompareReport) Markdown() string {
	var b strings.Builder
	if slices.Equal(r.Config.Libs, Libs()) {
		b.WriteString("# mqttas vs paho.mqtt.golang: fault scenarios\n\n")
	} else {
		fmt.Fprintf(&b, "# MQTT clients under faults: %s\n\n", strings.Join(r.Config.Libs, ", "))
	}
	fmt.Fprintf(&b, "Each scenario runs once per client per round (%d round(s)) on a fresh rig: a private mosquitto "+
		"process (`max_queued_messages 0`, persistence on), the harness's link (embedded Toxiproxy with an MQTT tap) "+
		"between the client and the broker, and an independent observer (a persistent qos 1 subscriber connected "+
		"straight to the broker) that records every delivery in the ledger. Every client goes through the harness's "+
		"adapters (the Go clients in process, the others through their drivers in drivers/ over the driver protocol). Publishers and subscribers keep their session (clean session off). Settings: %s. Run took %v.\n\n",
		r.Config.Rounds, r.Settings, r.Duration.Round(time.Second))
	if slices.ContainsFunc(r.Config.Libs, isDriver) {
		b.WriteString(driverSettings + "\n\n")
	}
	if r.Command != "" {
		fmt.Fprintf(&b, "Produced by `%s`.\n\n", r.Command)
	}
	b.WriteString("Columns: *lost* = attempted and never delivered, whatever Publish said (for the subscriber scenarios: " +
		"messages the broker accepted for the subscriber under test that it did not hand over within the scenario's bound); *FALSE SUCCESSES* = Publish " +
		"returned nil and the message was never delivered; *duplicates* = deliveries beyond the first; *outages* = " +
		"connection losses the client reported; *detection* = fault → the client reports the connection lost; " +
		"*reconnect* = heal → the client reports it is connected again (validate.Reconnect); " +
		"*recovery* = heal → the first publication acknowledged after the heal (validate.Recovery).\n\n")
	b.WriteString(r.MatrixTable().Markdown())
	b.WriteString("\n")
	b.WriteString(r.defectsMarkdown())
	b.WriteString("\n")
	b.WriteString(r.Machine.Table().Markdown())
	b.WriteString("\n")
	b.WriteString(GoalsTable("Goals", r.Goals).Markdown())
	b.WriteString("\n")
	for _, lib := range r.Config.Libs {
		b.WriteString(ClientTable(lib, r.Scenarios, r.Verdicts).Markdown())
		b.WriteString("\n")
	}
	gt := &Table{Title: "paho's known gaps, checked with the harness", Header: []string{"gap", "scenario", "paho", "evidence (paho)", "mqttas in the same scenario"}}
	for _, g := range r.Gaps {
		gt.AddRow(g.Gap, g.Scenario, g.Status, g.Paho, g.MQTTAS)
	}
	gt.Notes = []string{"A gap counts as observed when any round shows it. The gaps were found by reading paho's code and issues; " +
		"these are what this harness measured."}
	b.WriteString(gt.Markdown())
	b.WriteString("\n")
	st := &Table{Title: "Scenarios", Header: []string{"scenario", "what happens"}}
	for _, s := range r.Scenarios {
		st.AddRow(s.Name, s.Desc)
	}
	st.Notes = []string{"Faults start 1–3.5 s after the client is up (a random phase against both clients' keepalive " +
		"timers) and last their minimum plus up to a second at random (a random phase against the retry schedules: paho " +
		"retries exactly every second, so whole-second outages would line its retries up with the heal)."}
	b.WriteString(st.Markdown())
	if r.Config.Rounds > 1 {
		b.WriteString("\n")
		b.WriteString(VerdictTable("Every run", r.Verdicts).Markdown())
	}
	if len(r.Errors) > 0 {
		b.WriteString("\n### Errors\n\n")
		for _, e := range r.Errors {
			fmt.Fprintf(&b, "- %s\n", e)
		}
	}
	return b.String()
}
