#!/usr/bin/env bash
# Installs what the tests need on a fresh Debian machine: the mosquitto broker and clients, Chromium
# with a font for the report rendering test, the MQTT libraries the out-of-process drivers run on, and
# kubectl for the fleet's manifests.
# Idempotent: does nothing when everything is already there.
set -euo pipefail
need=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need+=(mosquitto)
command -v mosquitto_pub >/dev/null 2>&1 || need+=(mosquitto-clients)
# The soak report's test renders index.html in headless Chromium.
command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ] || need+=(chromium)
[ -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || need+=(fonts-dejavu-core)
# drivers/python/driver.py: Debian's python3 with its paho-mqtt.
[ -x /usr/bin/python3 ] && /usr/bin/python3 -c 'import paho.mqtt.client' >/dev/null 2>&1 || need+=(python3 python3-paho-mqtt)
# drivers/node/driver.js: node with Debian's MQTT.js.
[ -x /usr/bin/node ] || need+=(nodejs)
[ -e /usr/share/nodejs/mqtt/package.json ] || need+=(node-mqtt)
# drivers/c/driver.c (make c-driver): a C compiler, libmosquitto and cJSON.
command -v cc >/dev/null 2>&1 || need+=(gcc libc6-dev)
[ -e /usr/include/mosquitto.h ] || need+=(libmosquitto-dev)
[ -e /usr/include/cjson/cJSON.h ] || need+=(libcjson-dev)
# The fleet's manifests (deploy/) are rendered by kubectl kustomize in harness/k8s's tests: Debian's kubectl.
command -v kubectl >/dev/null 2>&1 || need+=(kubernetes-client)
# make scale (scripts/scale.sh) measures with GNU time.
[ -x /usr/bin/time ] || need+=(time)
if [ ${#need[@]} -eq 0 ]; then exit 0; fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "deps: installing ${need[*]}" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
