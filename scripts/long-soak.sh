#!/usr/bin/env bash
# make long-soak: the long soak of the streaming ledger. LONG_CLIENTS mqttas clients at LONG_RATE msg/s each until
# LONG_MESSAGES are published (at most LONG_DURATION) under the random schedule (a fault every 1-6 s), the
# broker a local mosquitto process (a
# container's published port would put Docker's userland proxy, a CPU-bound hop, between the link and the
# broker). Then soak figures writes its scale figures to LONG_FIGURES and checks them: PASS with nothing lost,
# at least LONG_MESSAGES published, peak RSS below LONG_MAX_RSS_MIB and the history below LONG_MAX_HISTORY
# bytes. The defaults are the 10-million-message run of bench/results/soak-long.json (about half an hour on 2
# CPUs).
set -euo pipefail
clients=${LONG_CLIENTS:-200}
rate=${LONG_RATE:-50}
messages=${LONG_MESSAGES:-10000000}
duration=${LONG_DURATION:-90m}
seed=${LONG_SEED:-10}
reports=${REPORTS:-reports}
figures=${LONG_FIGURES:-bench/results/soak-long.json}
go=${GO:-go}

dir=$reports/long-soak-$(date +%Y%m%d-%H%M%S)
mkdir -p build "$(dirname "$figures")"
"$go" build -o build/soak ./cmd/soak
echo "long-soak: $clients clients × $rate msg/s until $messages messages (at most $duration), seed $seed; report in $dir"
code=0
MQTTAS_BROKER=process build/soak -clients "$clients" -rate "$rate" -messages "$messages" -duration "$duration" -seed "$seed" \
	-progress 30s -out "$dir" || code=$?
[ -d "$dir" ] || exit "$code"
checked=0
build/soak figures -o "$figures" -max-peak-rss "${LONG_MAX_RSS_MIB:-256}" -max-history "${LONG_MAX_HISTORY:-1000000000}" \
	-min-messages "$messages" "$dir" || checked=$?
[ "$code" -ne 0 ] || code=$checked
echo "long-soak: figures in $figures"
exit "$code"
