#!/usr/bin/env bash
# make fleet: one soak run split into FLEET_SHARDS shard processes on this machine (FLEET_CLIENTS clients each,
# for FLEET_DURATION, each under its own seeded random link faults) against one broker the harness starts
# (soak broker), then soak merge of their reports into one verdict and one report. Exits non-zero unless every
# shard ran and the merged verdict is PASS.
set -uo pipefail
shards=${FLEET_SHARDS:-4}
clients=${FLEET_CLIENTS:-250}
duration=${FLEET_DURATION:-3m}
rate=${FLEET_RATE:-2}
seed=${FLEET_SEED:-$(date +%s)}
reports=${REPORTS:-reports}
go=${GO:-go}

run_id=fleet-$(date +%Y%m%d-%H%M%S)
dir=$reports/$run_id
mkdir -p "$dir" build || exit 3
"$go" build -o build/soak ./cmd/soak || exit 3

broker_pid=
pids=()
cleanup() {
	for p in "${pids[@]}" $broker_pid; do kill -TERM "$p" 2>/dev/null; done
	for p in "${pids[@]}" $broker_pid; do wait "$p" 2>/dev/null; done
}
trap cleanup EXIT
trap 'exit 4' INT TERM

build/soak broker -addr-file "$dir/broker.addr" >/dev/null 2>"$dir/broker.log" &
broker_pid=$!
for _ in $(seq 600); do # up to a minute for the broker to answer
	[ -s "$dir/broker.addr" ] && break
	kill -0 "$broker_pid" 2>/dev/null || { cat "$dir/broker.log"; exit 3; }
	sleep 0.1
done
[ -s "$dir/broker.addr" ] || { echo "fleet: the broker did not start"; cat "$dir/broker.log"; exit 3; }
addr=$(cat "$dir/broker.addr")
echo "fleet: run $run_id: $shards shards × $clients clients × $rate msg/s for $duration, seeds $seed…$((seed + shards - 1)), broker $addr; reports in $dir"

dirs=()
for ((i = 0; i < shards; i++)); do
	build/soak -shard "$i/$shards" -run-id "$run_id" -broker "$addr" -clients "$clients" -rate "$rate" \
		-duration "$duration" -seed $((seed + i)) -progress 30s -out "$dir/shard$i" >"$dir/shard$i.out" 2>"$dir/shard$i.log" &
	pids+=($!)
	dirs+=("$dir/shard$i")
done
worst=0
for ((i = 0; i < shards; i++)); do
	wait "${pids[$i]}"
	code=$?
	echo "fleet: shard $i/$shards exit $code: $(grep -E '^soak: (PASS|FAIL|UNKNOWN|INTERRUPTED|HARNESS)' "$dir/shard$i.log" | head -1)"
	[ "$code" -ne 0 ] && { tail -5 "$dir/shard$i.log"; worst=$code; }
done
pids=()
kill -TERM "$broker_pid" && wait "$broker_pid"
broker_pid=

build/soak merge -out "$dir/merged" "${dirs[@]}"
code=$?
if [ "$code" -eq 0 ] && [ "$worst" -ne 0 ]; then
	code=$worst
fi
echo "fleet: merged report $dir/merged/index.html (exit $code)"
exit "$code"
