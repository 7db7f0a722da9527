// Package scenarios holds the Ginkgo specs that prove mqttas's promises against a real Mosquitto behind
// the harness's faults. Each spec is one promise: the fault, the promise and the measured figures read in
// plain words, and figures are attached with AddReportEntry. Run them with `make test` or
// `go tool ginkgo ./scenarios`; select topics with --label-filter (qos1, pid-renewal, keepalive, session,
// subscribe, connect, soak).
package scenarios
