#!/usr/bin/env bash
# Measures what docs/scale.md plans a fleet with, on this machine, and writes bench/results/scale.json:
# two shards of one run (SMALL and LARGE clients, SOAK_RATE msg/s each, SCALE_DURATION under the random
# link faults) against one mosquitto this script starts, each under /usr/bin/time; then soak merge of the
# two shards, of the small one alone and of the small one played SCALE_REPEAT (10) times over, one run
# after the other, under /usr/bin/time too. Per client: the difference of the two shards' CPU and peak
# memory over the difference of their clients (what a shard costs beyond its fixed part). The merge's
# CPU per event likewise from the two merges; its memory per event from the small shard played over
# against it once (the same clients, ten times the events), per client from the two merges. Broker:
# mosquitto's CPU over the messages it took in and sent out.
# `make scale` runs it (about 3 minutes). SCALE_REUSE=1 measures the merges again on the shards (and the
# shards' and broker's figures) a previous run left in build/scale.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
small="${SCALE_SMALL:-50}"
large="${SCALE_LARGE:-250}"
rate="${SOAK_RATE:-1}"
duration="${SCALE_DURATION:-1m}"
seed="${SOAK_SEED:-1}"
out="${SCALE_OUT:-bench/results/scale.json}"
reuse="${SCALE_REUSE:-0}"
repeat="${SCALE_REPEAT:-10}"
work="$root/build/scale"
export PATH="$PATH:/usr/sbin"
export TESTCONTAINERS_RYUK_DISABLED=true
command -v mosquitto >/dev/null || { echo "scale.sh: mosquitto not found (make deps)" >&2; exit 2; }
[ -x /usr/bin/time ] || { echo "scale.sh: /usr/bin/time not found (apt-get install time)" >&2; exit 2; }
if [ "$reuse" = 1 ]; then
	for f in shard-0/summary.json shard-1/summary.json shard-0.time shard-1.time mosquitto.time; do
		[ -e "$work/$f" ] || { echo "scale.sh: SCALE_REUSE=1 but $work/$f is missing (run make scale)" >&2; exit 2; }
	done
	rm -rf "$work"/merged* "$work/shard-0-long"
else
	rm -rf "$work"
fi
mkdir -p "$work" "$(dirname "$out")"
go build -o "$work/soak" ./cmd/soak
if [ "$reuse" != 1 ]; then

port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
cat >"$work/mosquitto.conf" <<CONF
listener $port 127.0.0.1
allow_anonymous true
persistence true
persistence_location $work/data/
autosave_interval 1
max_inflight_messages 20
max_queued_messages 1000
set_tcp_nodelay true
log_dest file $work/mosquitto.log
# Run as root (the harness's case in CI), mosquitto would drop to its own user, which cannot write here.
user root
CONF
mkdir -p "$work/data"
/usr/bin/time -f '%U %S %e %M' -o "$work/mosquitto.time" mosquitto -c "$work/mosquitto.conf" &
timepid=$!
cleanup() { local m; m="$(pgrep -P "$timepid" || true)"; [ -z "$m" ] || kill -TERM "$m" 2>/dev/null || true; }
trap cleanup EXIT
for _ in $(seq 50); do
	python3 -c "import socket; socket.create_connection(('127.0.0.1',$port),1)" 2>/dev/null && break
	sleep 0.1
done

shard() { # index clients
	/usr/bin/time -f '%U %S %e %M' -o "$work/shard-$1.time" "$work/soak" -broker "127.0.0.1:$port" -run-id scale \
		-shard "$1/2" -clients "$2" -rate "$rate" -duration "$duration" -seed "$seed" -out "$work/shard-$1" \
		>"$work/shard-$1.out" 2>"$work/shard-$1.err" || { echo "scale.sh: shard $1 failed:" >&2; tail -5 "$work/shard-$1.err" >&2; exit 1; }
}
shard 0 "$small"
shard 1 "$large"
# Stop mosquitto (the child of time) so that time writes its figures.
kill -TERM "$(pgrep -P "$timepid")"
wait "$timepid" || true
trap - EXIT
fi
# The small shard played SCALE_REPEAT times over, one after the other (times moved on by its span,
# sequence numbers by each stream's last), as the report of a run that long: the same clients, that
# many times the events, for what the merge's memory grows with as a run goes on.
python3 - "$work/shard-0" "$work/shard-0-long" "$repeat" <<'PY'
import gzip, json, os, shutil, sys
src, dst, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
os.makedirs(dst)
summary = json.load(open(os.path.join(src, "summary.json")))
name = [f for f in os.listdir(src) if f.startswith("history.jsonl")][0]
op = gzip.open if name.endswith(".gz") else open
ledger = {"invoke", "ok", "fail", "info", "deliver", "unexpected", "subscribe", "unsubscribe", "drops"}
lines = sorted((json.loads(l) for l in op(os.path.join(src, name), "rt") if l.strip()), key=lambda l: l.get("i", -1))
lines = [l for l in lines if l.get("kind") in ledger]
span = max(l["at_ns"] for l in lines) + 1_000_000_000
stream = lambda l: (l["id"]["publisher"], l["id"]["topic"])
last = {}
for l in lines:
    if "id" in l and l["kind"] != "unexpected":
        last[stream(l)] = max(last.get(stream(l), 0), l["id"]["seq"])
with gzip.open(os.path.join(dst, "history.jsonl.gz"), "wt") as f:
    for r in range(n):
        base = r * len(lines)
        for l in lines:
            l = json.loads(json.dumps(l))
            l["i"] += base
            l["at_ns"] += r * span
            if l["kind"] in ("ok", "fail", "info", "unsubscribe"):
                l["op"] = l.get("op", 0) + base
            if "id" in l and l["kind"] != "unexpected" and stream(l) in last:
                l["id"]["seq"] += r * last[stream(l)]
            f.write(json.dumps(l, separators=(",", ":")) + "\n")
summary["duration_ns"] = n * span
json.dump(summary, open(os.path.join(dst, "summary.json"), "w"))
PY
# The merge of both shards, and of the small one alone: the difference is what the merge costs per event.
merge() { # name shard-dir...
	local name=$1
	shift
	/usr/bin/time -f '%U %S %e %M' -o "$work/$name.time" "$work/soak" merge -out "$work/$name" "$@" \
		>"$work/$name.out" 2>"$work/$name.err" || { echo "scale.sh: $name failed:" >&2; tail -5 "$work/$name.err" >&2; exit 1; }
}
merge merged "$work/shard-0" "$work/shard-1"
merge merged-small "$work/shard-0"
merge merged-long "$work/shard-0-long"

python3 - "$work" "$out" "$small" "$large" "$rate" "$duration" <<'PY'
import json, os, sys, platform
work, out, small, large, rate, duration = sys.argv[1:]
small, large = int(small), int(large)
def t(name):
    u, s, e, m = open(os.path.join(work, name + ".time")).read().split()[-4:]
    return {"cpu_s": round(float(u) + float(s), 2), "wall_s": float(e), "max_rss_kib": int(m)}
def summary(d):
    return json.load(open(os.path.join(work, d, "summary.json")))
shards = []
for i, n in ((0, small), (1, large)):
    s = summary("shard-%d" % i)
    hist = [f for f in os.listdir(os.path.join(work, "shard-%d" % i)) if f.startswith("history.jsonl")]
    shards.append(dict(t("shard-%d" % i), clients=n, verdict=s["verdict"], attempts=s["attempts"],
                       acknowledged=s["acknowledged"], deliveries=s["deliveries"], outages=s["outages"],
                       history_bytes=os.path.getsize(os.path.join(work, "shard-%d" % i, hist[0]))))
broker = t("mosquitto")
msgs = sum(s["attempts"] + s["deliveries"] for s in shards)
def merge_of(name, of):
    m = summary(name)
    return dict(t(name), verdict=m["verdict"], attempts=m["attempts"], deliveries=m["deliveries"],
                events=m["attempts"] + m["deliveries"], history_bytes=sum(s["history_bytes"] for s in of))
merge = merge_of("merged", shards)
merge_small = merge_of("merged-small", shards[:1])
merge_long = dict(merge_of("merged-long", shards[:1]), history_bytes=os.path.getsize(os.path.join(work, "shard-0-long", "history.jsonl.gz")))
a, b = shards
busy = sum(s["wall_s"] for s in shards)
res = {
    "command": "make scale (scripts/scale.sh): SCALE_SMALL=%d SCALE_LARGE=%d SOAK_RATE=%s SCALE_DURATION=%s" % (small, large, rate, duration)
    + (" SCALE_REUSE=1: the merges measured again on the shards of the previous run" if os.environ.get("SCALE_REUSE") == "1" else ""),
    "machine": {"cpus": os.cpu_count(), "kernel": platform.release()},
    "shards": shards,
    "broker": dict(broker, messages_in_and_out=msgs, busy_wall_s=round(busy, 1)),
    "merge": merge,
    "merge_small_shard_alone": merge_small,
    "merge_small_shard_repeated": dict(merge_long, times=int(os.environ.get("SCALE_REPEAT", 10))),
    "per_client": {
        "rss_kib": round((b["max_rss_kib"] - a["max_rss_kib"]) / (large - small), 1),
        "cpu_ms_per_s": round(1000 * ((b["cpu_s"] / b["wall_s"]) - (a["cpu_s"] / a["wall_s"])) / (large - small), 3),
        "fixed_rss_kib": round(a["max_rss_kib"] - small * (b["max_rss_kib"] - a["max_rss_kib"]) / (large - small)),
    },
    "broker_cpu_us_per_message": round(1e6 * broker["cpu_s"] / msgs, 2),
    # An event is a publication (attempted message) or a delivery, a line of the histories.
    "merge_cpu_us_per_event": round(1e6 * (merge["cpu_s"] - merge_small["cpu_s"]) / (merge["events"] - merge_small["events"]), 2),
    # The merge streams: its memory grows with the clients (streams, subscribers, what is in flight), not
    # with the events. Per event: the small shard played over and over against it once (the same
    # clients); per client: the two merges (all of their difference charged to the clients).
    "merge_rss_bytes_per_event": round(1024 * (merge_long["max_rss_kib"] - merge_small["max_rss_kib"]) / (merge_long["events"] - merge_small["events"]), 1),
    "merge_rss_kib_per_client": round((merge["max_rss_kib"] - merge_small["max_rss_kib"]) / large, 1),
    "history_bytes_per_event": round((merge["history_bytes"] - merge_small["history_bytes"]) / (merge["events"] - merge_small["events"]), 2),
    "deliveries_per_publication": round(merge["deliveries"] / merge["attempts"], 2),
}
# docs/scale.md's plan, worked out from the figures above: PLAN_DEVICES devices at SOAK_RATE msg/s,
# PLAN_PER_POD clients a shard.
devices, per_pod = int(os.environ.get("PLAN_DEVICES", 100000)), int(os.environ.get("PLAN_PER_POD", 1000))
r, pc, dpp = float(rate), res["per_client"], res["deliveries_per_publication"]
merge_fixed_kib = merge_small["max_rss_kib"] - small * res["merge_rss_kib_per_client"]
res["merge_fixed_rss_kib"] = round(merge_fixed_kib)
ops = devices * r * (1 + dpp)
def run_of(seconds):
    events = devices * r * seconds * (1 + dpp)
    return {"seconds": seconds, "events": round(events), "merge_cpu_s": round(events * res["merge_cpu_us_per_event"] / 1e6),
            "merge_memory_gb": round((1024 * (merge_fixed_kib + devices * res["merge_rss_kib_per_client"]) + events * max(res["merge_rss_bytes_per_event"], 0)) / 1e9, 1),
            "histories_gb": round(events * res["history_bytes_per_event"] / 1e9, 2)}
res["plan"] = {
    "devices": devices, "rate": r, "clients_per_pod": per_pod, "pods": -(-devices // per_pod),
    "pod_memory_mib": round((pc["fixed_rss_kib"] + per_pod * pc["rss_kib"]) / 1024),
    "pod_cpu_cores": round(per_pod * pc["cpu_ms_per_s"] / 1000, 2),
    "broker_messages_per_s": round(ops),
    "broker_cores": round(ops * res["broker_cpu_us_per_message"] / 1e6, 1),
    "devices_per_mosquitto": round(1e6 / res["broker_cpu_us_per_message"] / (r * (1 + dpp))),
    "runs": [run_of(60), run_of(600)],
}
json.dump(res, open(out, "w"), indent=2)
open(out, "a").write("\n")
print(json.dumps(res, indent=2))
PY
