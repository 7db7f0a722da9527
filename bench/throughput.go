package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// quietAfter is how long a flow may deliver nothing before the rest counts as lost.
const quietAfter = 3 * time.Second

// pair connects a subscriber (subscribed to topic at qos) and a publisher of lib to addr.
func pair(ctx context.Context, lib, addr, tag, topic string, qos byte, rcv *receiver) (pub, sub native, err error) {
	return pairVia(ctx, lib, addr, addr, tag, topic, qos, rcv)
}

// pairVia is pair with the publisher connected to pubAddr and the subscriber to subAddr.
func pairVia(ctx context.Context, lib, pubAddr, subAddr, tag, topic string, qos byte, rcv *receiver) (pub, sub native, err error) {
	sub, err = dialNative(ctx, lib, nativeOptions{addr: subAddr, id: "sub-" + tag, onMessage: rcv.onMessage})
	if err != nil {
		return nil, nil, err
	}
	if err := sub.subscribe(ctx, topic, qos); err != nil {
		sub.close()
		return nil, nil, fmt.Errorf("%s subscribe: %w", lib, err)
	}
	pub, err = dialNative(ctx, lib, nativeOptions{addr: pubAddr, id: "pub-" + tag})
	if err != nil {
		sub.close()
		return nil, nil, err
	}
	return pub, sub, nil
}

// measureFlow connects a publisher and a qos subscriber of lib on topic, runs publish over n payloads of
// size bytes, and measures first publish → last receive, system calls and CPU (the client's and the
// broker's). publish's error is wrapped with lib.
func measureFlow(ctx context.Context, lib, addr, tag, topic string, qos byte, n, size, brokerPID int,
	publish func(pub native, payloads [][]byte) error) (flowResult, error) {
	return measureFlowVia(ctx, lib, addr, addr, tag, topic, qos, n, size, brokerPID, publish)
}

// measureFlowVia is measureFlow with the publisher connected to pubAddr and the subscriber to subAddr.
func measureFlowVia(ctx context.Context, lib, pubAddr, subAddr, tag, topic string, qos byte, n, size, brokerPID int,
	publish func(pub native, payloads [][]byte) error) (flowResult, error) {
	rcv := newReceiver(n)
	pub, sub, err := pairVia(ctx, lib, pubAddr, subAddr, tag, topic, qos, rcv)
	if err != nil {
		return flowResult{}, err
	}
	defer sub.close()
	defer pub.close()
	payloads := makePayloads(n, size)
	runtime.GC()
	r0, w0 := sysCalls()
	meter := startCPU(brokerPID)
	start := time.Now()
	if err := publish(pub, payloads); err != nil {
		return flowResult{}, fmt.Errorf("%s %w", lib, err)
	}
	pubDur := time.Since(start)
	rcv.wait(ctx, quietAfter)
	f := rcv.result(n, start, pubDur)
	f.countSyscalls(r0, w0)
	f.setCPU(meter.stop())
	return f, ctx.Err()
}

// runQoS0 publishes n qos 0 messages of size bytes from one client to another of the same library, as
// fast as the publisher takes them, and times first publish → last receive.
func runQoS0(ctx context.Context, lib, addr string, n, size int, tag string, brokerPID int) (flowResult, error) {
	return runQoS0Via(ctx, lib, addr, addr, n, size, tag, brokerPID)
}

// runQoS0Via is runQoS0 with the publisher connected to pubAddr and the subscriber to subAddr.
func runQoS0Via(ctx context.Context, lib, pubAddr, subAddr string, n, size int, tag string, brokerPID int) (flowResult, error) {
	topic := "bench/q0/" + tag
	return measureFlowVia(ctx, lib, pubAddr, subAddr, tag, topic, 0, n, size, brokerPID, func(pub native, payloads [][]byte) error {
		for i := range n {
			if err := pub.publish0(ctx, topic, payloads[i]); err != nil {
				return fmt.Errorf("publish %d: %w", i, err)
			}
		}
		return nil
	})
}

// runQoS1Seq publishes n qos 1 messages one at a time, each waiting for its PUBACK, to a qos 1
// subscriber of the same library, and records every Publish's latency.
func runQoS1Seq(ctx context.Context, lib, addr string, n, size int, tag string, brokerPID int) (flowResult, error) {
	return runQoS1SeqVia(ctx, lib, addr, addr, n, size, tag, brokerPID)
}

// runQoS1SeqVia is runQoS1Seq with the publisher connected to pubAddr and the subscriber to subAddr.
func runQoS1SeqVia(ctx context.Context, lib, pubAddr, subAddr string, n, size int, tag string, brokerPID int) (flowResult, error) {
	topic := "bench/q1s/" + tag
	lat := make([]time.Duration, n)
	f, err := measureFlowVia(ctx, lib, pubAddr, subAddr, tag, topic, 1, n, size, brokerPID, func(pub native, payloads [][]byte) error {
		for i := range n {
			t := time.Now()
			if err := pub.publish1(ctx, topic, payloads[i]); err != nil {
				return fmt.Errorf("publish %d: %w", i, err)
			}
			lat[i] = time.Since(t)
		}
		return nil
	})
	f.Latencies = lat
	return f, err
}

// runQoS1Window publishes n qos 1 messages with w in flight to a qos 1 subscriber of the same library.
func runQoS1Window(ctx context.Context, lib, addr string, n, w, size int, tag string, brokerPID int) (flowResult, error) {
	topic := "bench/q1w/" + tag
	return measureFlow(ctx, lib, addr, tag, topic, 1, n, size, brokerPID, func(pub native, payloads [][]byte) error {
		if err := pub.window(ctx, topic, n, w, func(i int) []byte { return payloads[i] }); err != nil {
			return fmt.Errorf("publish: %w", err)
		}
		return nil
	})
}

// Tools are the mosquitto command-line clients used as the broker's reference ceiling.
type Tools struct {
	Pub, Sub string // paths; empty means found on PATH
}

func (t Tools) paths() (pub, sub string, err error) {
	pub, sub = t.Pub, t.Sub
	if pub == "" {
		if pub, err = exec.LookPath("mosquitto_pub"); err != nil {
			return "", "", err
		}
	}
	if sub == "" {
		if sub, err = exec.LookPath("mosquitto_sub"); err != nil {
			return "", "", err
		}
	}
	return pub, sub, nil
}

// runTools measures the broker's own ceiling: mosquitto_pub -l feeding n lines of size bytes at qos 0 to
// mosquitto_sub -C n, timed from starting mosquitto_pub until mosquitto_sub exits after the n-th message.
// Both tools read and write plain files (no pipe into this process, which would cost the tools a context
// switch per message); the process start-up of mosquitto_pub (a few ms) counts against them.
// subscribed must return once the broker has the subscription of client id to topic.
func runTools(ctx context.Context, tools Tools, addr string, n, size int, tag, dir string,
	subscribed func(ctx context.Context, id, topic string) error, brokerPID int) (flowResult, error) {
	pubBin, subBin, err := tools.paths()
	if err != nil {
		return flowResult{}, err
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return flowResult{}, err
	}
	topic := "bench/tools/" + tag
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()

	in, err := os.CreateTemp(dir, "lines-*")
	if err != nil {
		return flowResult{}, err
	}
	defer os.Remove(in.Name())
	defer in.Close()
	w := bufio.NewWriterSize(in, 1<<20)
	for _, p := range makePayloads(n, size) {
		w.Write(p)
		w.WriteByte('\n')
	}
	if err := w.Flush(); err != nil {
		return flowResult{}, err
	}
	if _, err := in.Seek(0, 0); err != nil {
		return flowResult{}, err
	}
	outName := filepath.Join(dir, "received-"+tag)
	out, err := os.Create(outName)
	if err != nil {
		return flowResult{}, err
	}
	defer os.Remove(outName)
	defer out.Close()

	subID := "sub-" + tag
	sub := exec.CommandContext(ctx, subBin, "-h", host, "-p", port, "-t", topic, "-q", "0", "-i", subID,
		"-C", strconv.Itoa(n))
	sub.Stdout = out
	var subErr bytes.Buffer
	sub.Stderr = &subErr
	if err := sub.Start(); err != nil {
		return flowResult{}, err
	}
	subDone := make(chan time.Time, 1)
	var subWait error
	go func() {
		subWait = sub.Wait()
		subDone <- time.Now()
	}()
	stopSub := func() {
		_ = sub.Process.Signal(syscall.SIGTERM)
		select {
		case <-subDone:
		case <-time.After(5 * time.Second):
			_ = sub.Process.Kill()
			<-subDone
		}
	}
	if err := subscribed(ctx, subID, topic); err != nil {
		stopSub()
		return flowResult{}, fmt.Errorf("mosquitto_sub did not subscribe: %w (stderr: %s)", err, subErr.String())
	}

	pub := exec.CommandContext(ctx, pubBin, "-h", host, "-p", port, "-t", topic, "-q", "0", "-l", "-i", "pub-"+tag)
	pub.Stdin = in
	var pubErr bytes.Buffer
	pub.Stderr = &pubErr
	runtime.GC()
	meter := startCPU(brokerPID)
	start := time.Now()
	if err := pub.Start(); err != nil {
		stopSub()
		return flowResult{}, err
	}
	pubDone := make(chan time.Time, 1)
	var pubWait error
	go func() {
		pubWait = pub.Wait()
		pubDone <- time.Now()
	}()

	// Wait for mosquitto_sub to exit after n messages, or for its output to stop growing.
	var end time.Time
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	lastSize, lastChange := int64(-1), time.Now()
wait:
	for {
		select {
		case end = <-subDone:
			break wait
		case now := <-tick.C:
			st, err := out.Stat()
			if err != nil {
				stopSub()
				return flowResult{}, err
			}
			if st.Size() != lastSize {
				lastSize, lastChange = st.Size(), now
			} else if now.Sub(lastChange) >= quietAfter {
				stopSub() // messages were lost: count what arrived
				break wait
			}
		case <-ctx.Done():
			stopSub()
			return flowResult{}, ctx.Err()
		}
	}
	var pubEnd time.Time
	select {
	case pubEnd = <-pubDone:
	case <-time.After(10 * time.Second):
		_ = pub.Process.Kill()
		<-pubDone
		return flowResult{}, errors.New("mosquitto_pub did not exit")
	}
	if pubWait != nil {
		return flowResult{}, fmt.Errorf("mosquitto_pub: %w (%s)", pubWait, pubErr.String())
	}
	if !end.IsZero() && subWait != nil {
		return flowResult{}, fmt.Errorf("mosquitto_sub: %w (%s)", subWait, subErr.String())
	}

	// Count what mosquitto_sub printed, one message per line.
	rcv := newReceiver(n)
	data, err := os.ReadFile(outName)
	if err != nil {
		return flowResult{}, err
	}
	for line := range bytes.Lines(data) {
		rcv.onMessage(bytes.TrimSuffix(line, []byte("\n")))
	}
	f := rcv.result(n, start, pubEnd.Sub(start))
	if end.IsZero() {
		end = lastChange
	}
	f.Dur = end.Sub(start)
	f.setCPU(meter.stop())
	f.ClientWait = -1 // the tools' waits are not this process's
	f.ClientCPU = pub.ProcessState.UserTime() + pub.ProcessState.SystemTime() +
		sub.ProcessState.UserTime() + sub.ProcessState.SystemTime()
	return f, nil
}

// BrokerLogSubscribed returns a readiness check for runTools that watches a broker's log for the
// subscription (the broker must log with "log_type subscribe").
func BrokerLogSubscribed(logs func(context.Context) (string, error)) func(ctx context.Context, id, topic string) error {
	return func(ctx context.Context, id, topic string) error {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		want := " " + id + " 0 " + topic
		for {
			s, err := logs(ctx)
			if err != nil {
				return err
			}
			if strings.Contains(s, want) {
				return nil
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
}
