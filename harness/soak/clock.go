package soak

import (
	"encoding/json"
	"os"
	"strings"
	"time"
)

// ClockInfo is what a shard's summary states about the clock its times come from (its "clock"
// setting), so that a merge can say how well the shards' times line up.
type ClockInfo struct {
	// Host is the machine's host name: shards on one host read one clock.
	Host string `json:"host"`
	// Source is the clock read: the system's real-time clock (time.Now) and the kernel's clocksource.
	Source string `json:"source"`
	// Synchronised reports whether the kernel says the clock is kept in sync (NTP, PTP, chrony), and
	// MaxError is the kernel's bound on its error then (adjtimex maxerror); both unknown where the
	// kernel does not say (Known false).
	Synchronised bool          `json:"synchronised"`
	MaxError     time.Duration `json:"max_error_ns"`
	Known        bool          `json:"known"`
	// Started is the run's start on this clock (the summary's started, repeated for the merge).
	Started time.Time `json:"started"`
}

type clockInfo = ClockInfo

// readClock reads this machine's clock's description now.
func readClock() ClockInfo {
	c := ClockInfo{Source: "system real-time clock (time.Now)"}
	c.Host, _ = os.Hostname()
	if b, err := os.ReadFile("/sys/devices/system/clocksource/clocksource0/current_clocksource"); err == nil {
		c.Source += ", kernel clocksource " + strings.TrimSpace(string(b))
	}
	c.Synchronised, c.MaxError, c.Known = clockSync()
	return c
}

// settings is c as the report's "clock" setting, with the run's start.
func (c ClockInfo) settings(start time.Time) map[string]any {
	c.Started = start
	b, _ := json.Marshal(c)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return m
}

// clockOf reads back the "clock" setting of a summary's config (nil if it has none).
func clockOf(config map[string]any) *ClockInfo {
	v, ok := config["clock"]
	if !ok {
		return nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil
	}
	var c ClockInfo
	if json.Unmarshal(b, &c) != nil || c.Host == "" {
		return nil
	}
	return &c
}
