package main

import (
	"io"
	"os"
	"runtime/pprof"
	"runtime/trace"
)

// A profile of the whole run, written to a file from start to stop: the CPU profile, or the Go execution
// trace (goroutines blocking and waking on the network, the scheduler, system calls; `go tool trace FILE`
// shows it, and `go tool trace -d=parsed FILE` prints its events).
type profile struct {
	start func(io.Writer) error
	stop  func()
}

var (
	cpuProfile = profile{pprof.StartCPUProfile, pprof.StopCPUProfile}
	execTrace  = profile{trace.Start, trace.Stop}
)

// record starts p into file; the returned function stops it and closes the file.
func (p profile) record(file string) (func(), error) {
	f, err := os.Create(file)
	if err != nil {
		return nil, err
	}
	if err := p.start(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() {
		p.stop()
		f.Close()
	}, nil
}
