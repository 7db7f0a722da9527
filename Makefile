# mqttas: the resilient MQTT 3.1.1 client and its fault-injection harness.
#   make test   installs what it needs, then vet + race tests (what CI runs)
SHELL := /bin/bash
GO ?= go
# Debian installs mosquitto under /usr/sbin, which is not on every user's PATH.
export PATH := $(PATH):/usr/sbin
# Ryuk (testcontainers' reaper) cannot be pulled here; the harness cleans up itself.
export TESTCONTAINERS_RYUK_DISABLED := true
# The client is a Go module of its own with no requirements (mqttas/go.mod); the root module (the harness, the
# commands, the scenarios) uses it through a replace. ./... at the root stops at mqttas/, so vet, unit and fuzz
# also run inside it.
CLIENT_MODULE := mqttas
FUZZTIME ?= 60s
# Fuzz targets: package:target pairs. `make test` runs each for FUZZTIME_SHORT, `make fuzz` for FUZZTIME.
FUZZ_TARGETS := ./mqttas:FuzzDecode ./mqttas:FuzzReadLoop ./mqttas:FuzzTopicChecks ./mqttas:FuzzNetlink ./mqttas:FuzzStoreLog ./harness/ledger:FuzzDecode ./harness/ledger:FuzzRoundTrip ./harness/ledger:FuzzReadJSONL ./harness/ledger:FuzzReadOnline ./harness/ledger:FuzzStreamLine ./harness/ledger:FuzzMergeOnline ./harness/link/mqttframe:FuzzFramer \
  ./harness/clients/procclient:FuzzDecodeEvent ./internal/mqttwire:FuzzDecode ./harness/k8s:FuzzDecode ./internal/powercut:FuzzRollback
FUZZTIME_SHORT ?= 5s

# The scenario suite runs through the ginkgo CLI pinned in go.mod (go tool ginkgo), in parallel.
GINKGO := $(GO) tool ginkgo
GINKGO_PROCS ?= 4
# Label drivers: the scenarios through the out-of-process drivers (client:python, client:node, client:c), run
# with SCENARIO_FILTER='drivers' or one of them with SCENARIO_FILTER='client:python'.
SCENARIO_FILTER ?= !soak && !load-full && !drivers
REPORTS ?= reports

# make soak: the main job. Seeded random faults against SOAK_CLIENTS clients; SOAK_SEED=<n> repeats a schedule.
SOAK_DURATION ?= 2m
SOAK_CLIENTS ?= 20
SOAK_RATE ?= 5
# The client under test: mqttas, paho, or a driver (python: paho-mqtt, node: MQTT.js, c: libmosquitto).
SOAK_CLIENT ?= mqttas
# More soak flags for make soak and make replay, e.g. SOAK_FLAGS='-shard 0/4 -run-id r1 -broker 127.0.0.1:1883'.
SOAK_FLAGS ?=

.PHONY: long-soak fleet all deps c-driver durable-driver test vet unit scenarios load fuzz fuzz-short soak replay bench compare compare-crash bench-go image image-harness scale broker-image clean clean-containers

all: test

deps:
	@scripts/deps.sh

vet:
	$(GO) vet ./...
	$(GO) vet -C $(CLIENT_MODULE) ./...
	@# Every tracked Go file of both modules.
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt needed: $$out"; exit 1; fi
	@# The client stays light: the mqttas package imports only the standard library...
	@ext=$$($(GO) list -C $(CLIENT_MODULE) -deps -f '{{if not .Standard}}{{.ImportPath}}{{end}}' ./... | grep -v '^github.com/mqttas/mqttas-go/mqttas$$' || true); \
	  if [ -n "$$ext" ]; then echo "mqttas imports non-standard packages: $$ext"; exit 1; fi
	@# ...and its module requires nothing: go mod graph lists only the go and toolchain versions every module has.
	@req=$$(cd $(CLIENT_MODULE) && $(GO) mod graph | grep -v -e ' go@' -e ' toolchain@' || true); \
	  if [ -n "$$req" ]; then echo "the mqttas module requires other modules:"; echo "$$req"; exit 1; fi

# With a Docker engine, build the broker image once up front, so parallel test packages do not each build it.
broker-image: deps
	@if docker info >/dev/null 2>&1; then containers/mosquitto/build.sh; else echo "no Docker engine: the process backend serves"; fi

# The C driver for the harness's driver protocol (drivers/c), on libmosquitto; procclient's tests run it.
CC ?= cc
C_DRIVER := build/drivers/c/driver
c-driver: deps $(C_DRIVER)
$(C_DRIVER): drivers/c/driver.c
	@mkdir -p $(@D)
	$(CC) -std=c11 -D_GNU_SOURCE -O2 -Wall -Wextra -Werror -o $@ $< -lmosquitto -lcjson -lpthread -lm

# The crash-capable driver (drivers/durable: mqttas or paho.mqtt.golang with a store on disk, in a child
# process the client faults can kill); the harness's clients mqttas-durable and paho-durable run it.
DURABLE_DRIVER := build/drivers/durable/driver
durable-driver:
	@mkdir -p $(dir $(DURABLE_DRIVER))
	$(GO) build -o $(DURABLE_DRIVER) ./drivers/durable

unit: deps broker-image c-driver
	$(GO) test -race -count=1 $$($(GO) list ./... | grep -v /scenarios)
	$(GO) test -C $(CLIENT_MODULE) -race -count=1 ./...

# Writes JUnit and JSON reports under reports/scenarios/.
scenarios: deps broker-image
	@mkdir -p $(REPORTS)/scenarios
	$(GINKGO) run --race $(if $(CI),--no-color) --procs=$(GINKGO_PROCS) --label-filter='$(SCENARIO_FILTER)' \
	  --timeout=20m --poll-progress-after=120s \
	  --junit-report=junit.xml --json-report=report.json --output-dir=$(REPORTS)/scenarios ./scenarios

fuzz-short:
	@$(MAKE) --no-print-directory fuzz FUZZTIME=$(FUZZTIME_SHORT)

# Under heavy load Go's fuzz engine can report "context deadline exceeded" while starting its workers, with no
# failing input: that one case is run once more; any failing input fails at once. Go fuzzes only packages of the
# main module, so a target under mqttas/ runs inside the client's module.
fuzz:
	@set -eo pipefail; for t in $(FUZZ_TARGETS); do \
	  pkg=$${t%%:*}; name=$${t##*:}; dir=.; rel=$$pkg; \
	  case $$pkg in ./$(CLIENT_MODULE)|./$(CLIENT_MODULE)/*) dir=$(CLIENT_MODULE); rel=.$${pkg#./$(CLIENT_MODULE)};; esac; \
	  echo "fuzz $$pkg $$name for $(FUZZTIME)"; \
	  out=$$($(GO) test -C $$dir -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) $$rel 2>&1) || { \
	    if echo "$$out" | grep -q 'context deadline exceeded' && ! echo "$$out" | grep -q 'Failing input written'; then \
	      echo "fuzz $$pkg $$name: the fuzz engine timed out under load without a failing input; once more"; \
	      out=$$($(GO) test -C $$dir -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) $$rel 2>&1) || { echo "$$out"; exit 1; }; \
	    else echo "$$out"; exit 1; fi; }; \
	  echo "$$out" | tail -n 3; \
	done

test: deps vet unit scenarios fuzz-short

# Full-size load: 1000 mqttas clients through the faulty link with resets (label load-full).
load: deps
	@mkdir -p $(REPORTS)/load
	$(GINKGO) run $(if $(CI),--no-color) --label-filter='load-full' --timeout=30m --poll-progress-after=120s \
	  --junit-report=junit.xml --json-report=report.json --output-dir=$(REPORTS)/load ./scenarios

# Report in reports/soak-<time>/ (index.html, summary.json, history.jsonl.gz, schedule.yaml); exits non-zero on loss.
# SOAK_CRASH=1 adds the client faults (client-kill, client-power-cut) to the random schedule; they need a
# crash-capable client: SOAK_CLIENT=mqttas-durable (or paho-durable, which takes kills only: SOAK_CRASH=client-kill).
SOAK_CRASH ?=
soak: deps c-driver durable-driver
	SOAK_CRASH=$(SOAK_CRASH) SOAK_DURATION=$(SOAK_DURATION) SOAK_CLIENTS=$(SOAK_CLIENTS) SOAK_RATE=$(SOAK_RATE) SOAK_CLIENT=$(SOAK_CLIENT) \
	  $(GO) run ./cmd/soak $(SOAK_FLAGS) -out $(REPORTS)/soak-$$(date +%Y%m%d-%H%M%S)

# One soak split into FLEET_SHARDS shard processes (FLEET_CLIENTS clients each, FLEET_RATE msg/s, FLEET_DURATION) against
# one broker, each under its own random link faults, merged by soak merge into one report: reports/fleet-<time>/merged/.
# Exits non-zero unless every shard ran and the merged verdict is PASS.
FLEET_SHARDS ?= 4
FLEET_CLIENTS ?= 250
FLEET_DURATION ?= 3m
FLEET_RATE ?= 2
fleet: deps
	FLEET_SHARDS=$(FLEET_SHARDS) FLEET_CLIENTS=$(FLEET_CLIENTS) FLEET_DURATION=$(FLEET_DURATION) FLEET_RATE=$(FLEET_RATE) \
	  REPORTS=$(REPORTS) GO=$(GO) scripts/fleet.sh

# The 10-million-message soak of the streaming ledger (scripts/long-soak.sh; about half an hour): its figures, checked
# against the bounds (peak RSS < 256 MiB, history < 1 GB, 0 lost), go to bench/results/soak-long.json, then the
# README's paragraph and docs/scale.md's table (go run ./cmd/bench readme).
long-soak: deps
	REPORTS=$(REPORTS) GO=$(GO) scripts/long-soak.sh
	$(GO) run ./cmd/bench readme

# Replay a dropout trace: make replay TRACE=traces/ap-reboot.yaml (the trace sets the run's length).
replay: deps c-driver durable-driver
	@test -n "$(TRACE)" || { echo "usage: make replay TRACE=traces/<name>.yaml"; exit 2; }
	SOAK_CLIENTS=$(SOAK_CLIENTS) SOAK_RATE=$(SOAK_RATE) SOAK_CLIENT=$(SOAK_CLIENT) \
	  $(GO) run ./cmd/soak $(SOAK_FLAGS) -trace $(TRACE) -out $(REPORTS)/replay-$$(basename $(TRACE) .yaml)-$$(date +%Y%m%d-%H%M%S)

# mqttas against paho.mqtt.golang on one broker, interleaved rounds: bench/results/bench.{md,json} (committed),
# then the README's generated tables from the results.
BENCHFLAGS ?=
bench: deps
	$(GO) run ./cmd/bench $(BENCHFLAGS) bench
	$(GO) run ./cmd/bench readme

# The fault scenarios through every client's adapter, the drivers' too: bench/results/compare.{md,json} (a verdict
# table with one column per client, and the defects found with their evidence), then the README's tables.
COMPARE_CLIENTS ?= mqttas,paho,python,node,c,mqttas-durable,paho-durable
compare: deps c-driver durable-driver
	$(GO) run ./cmd/bench $(BENCHFLAGS) -clients $(COMPARE_CLIENTS) compare
	$(GO) run ./cmd/bench readme

# The crash scenarios alone (client-kill, client-power-cut) for the crash-capable clients (mqttas and paho with
# their stores on disk, in a child process): bench/results/crash/compare.{md,json} (committed).
compare-crash: deps durable-driver
	$(GO) run ./cmd/bench $(BENCHFLAGS) -clients mqttas-durable,paho-durable -scenarios client-kill,client-power-cut \
	  -out bench/results/crash compare

# The publish paths as Go benchmarks, with allocations.
bench-go: deps
	$(GO) test -run '^$$' -bench . -benchmem ./bench

# The broker image, built offline from the host's mosquitto (no registry needed).
image: deps
	containers/mosquitto/build.sh

# The harness image of a fleet run (deploy/, docs/scale.md): the soak command and the durable driver, static, on the
# broker image; then a crash soak in it (about a minute) shows that the client faults run there.
# Push both where the cluster pulls from and set them with kustomize's images (deploy/README.md).
HARNESS_IMAGE ?= mqttas/soak:local
image-harness: image
	@rm -rf build/soak-image && mkdir -p build/soak-image/root/opt/mqttas/drivers build/soak-image/root/tmp
	chmod 1777 build/soak-image/root/tmp
	CGO_ENABLED=0 $(GO) build -trimpath -o build/soak-image/soak ./cmd/soak
	CGO_ENABLED=0 $(GO) build -trimpath -o build/soak-image/root/opt/mqttas/$(DURABLE_DRIVER) ./drivers/durable
	cp go.mod build/soak-image/root/opt/mqttas/go.mod
	cp containers/soak/Dockerfile build/soak-image/Dockerfile
	@# Classic builder: BuildKit would want to fetch its frontend image.
	DOCKER_BUILDKIT=0 docker build --quiet --tag $(HARNESS_IMAGE) build/soak-image
	@# The image's own check: the crash trace (kills and power cuts) through the durable driver it carries.
	docker run --rm -v $(CURDIR)/traces:/traces:ro -e MQTTAS_BROKER=process $(HARNESS_IMAGE) -trace /traces/client-crash.yaml \
	  -client mqttas-durable -clients 4 -rate 10 -tail 2s -drain-quiet 2s -out /tmp/image-check

# What docs/scale.md plans a fleet with: per-client memory and CPU, broker CPU per message and the merge's
# cost, measured here into bench/results/scale.json (scripts/scale.sh says how).
scale: deps
	scripts/scale.sh

clean:
	rm -rf build bin

# Leftovers of a killed test run (Ryuk is off). Removes every testcontainers container on this engine.
clean-containers:
	@ids=$$(docker ps -aq --filter label=org.testcontainers=true); if [ -n "$$ids" ]; then docker rm -f -v $$ids; fi
