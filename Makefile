# mqttas: the resilient MQTT 3.1.1 client and its fault-injection harness.
#   make test   installs what it needs, then vet + race tests (what CI runs)
SHELL := /bin/bash
GO ?= go
# Debian installs mosquitto under /usr/sbin, which is not on every user's PATH.
export PATH := $(PATH):/usr/sbin
# Ryuk (testcontainers' reaper) cannot be pulled here; the harness cleans up itself.
export TESTCONTAINERS_RYUK_DISABLED := true
FUZZTIME ?= 10s

.PHONY: all deps test vet unit fuzz-short clean

all: test

deps:
	@scripts/deps.sh

vet:
	$(GO) vet ./...
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt needed: $$out"; exit 1; fi

unit: deps
	$(GO) test -race -count=1 ./...

fuzz-short:
	$(GO) test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME) ./mqttas

test: deps vet unit fuzz-short

clean:
	rm -rf build bin
