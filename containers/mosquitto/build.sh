#!/usr/bin/env bash
# Builds the broker image mqttas/mosquitto:2.0.11-local without any registry:
# the host's mosquitto binary plus its ldd closure on a FROM scratch base.
# Idempotent: it reassembles the context each time but builds only when the
# context differs from the one the existing image was built from.
# `make image` calls this.
#
# Environment: IMAGE (tag, default mqttas/mosquitto:2.0.11-local),
#              MOSQUITTO (binary, default: PATH, then /usr/sbin/mosquitto).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
image="${IMAGE:-mqttas/mosquitto:2.0.11-local}"
ctx="$root/build/mosquitto-image"

die() { echo "build.sh: $*" >&2; exit 1; }

bin="${MOSQUITTO:-$(command -v mosquitto || true)}"
[ -n "$bin" ] || bin=/usr/sbin/mosquitto
[ -x "$bin" ] || die "mosquitto not found (looked on PATH and at /usr/sbin/mosquitto); install it: apt-get install mosquitto"
command -v ldd >/dev/null || die "ldd not found (it lists the libraries mosquitto needs)"
command -v docker >/dev/null || die "docker CLI not found; install Docker or use the process backend (MQTTAS_BROKER=process)"
docker version --format '{{.Server.Version}}' >/dev/null 2>&1 ||
	die "the Docker engine does not answer (is dockerd running, may this user use it?)"

version="$("$bin" -h 2>&1 | sed -n 's/^mosquitto version \([^ ]*\).*/\1/p' | head -n1 || true)"
case "$image" in
*"${version:-unknown}"*) ;;
*) echo "build.sh: warning: $bin is version ${version:-unknown}, the tag says $image" >&2 ;;
esac

rm -rf "$ctx"
rootfs="$ctx/rootfs"
mkdir -p "$rootfs/usr/sbin" "$rootfs/mosquitto/config" "$rootfs/mosquitto/data" "$rootfs/tmp"
chmod 1777 "$rootfs/tmp"
cp -L "$bin" "$rootfs/usr/sbin/mosquitto"

# The dynamic loader and every shared library, at the paths ldd reports
# (symlinks resolved, so the image needs no link farm).
libs="$(ldd "$bin" | awk '/=>/ && $3 ~ /^\// {print $3} /^[[:space:]]*\// {print $1}')"
[ -n "$libs" ] || die "ldd found no libraries for $bin (is it a static binary?)"
for lib in $libs; do
	cp -L --parents "$lib" "$rootfs/"
done

cp "$here/mosquitto.conf" "$rootfs/mosquitto/config/mosquitto.conf"
cp "$here/Dockerfile" "$ctx/Dockerfile"

# Docker's classic builder does not reliably cache a COPY onto scratch, so
# idempotence comes from a fingerprint of the context kept as an image label:
# an unchanged host and config leave the existing image alone.
fingerprint="$(cd "$ctx" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -c1-32)"
label=io.mqttas.context
previous="$(docker image inspect --format '{{.Id}}' "$image" 2>/dev/null || true)"
if [ -n "$previous" ] &&
	[ "$(docker image inspect --format "{{index .Config.Labels \"$label\"}}" "$image" 2>/dev/null)" = "$fingerprint" ]; then
	echo "$image is up to date (${previous:7:12}, mosquitto ${version:-unknown})"
	exit 0
fi

# Classic builder: BuildKit would want to fetch its frontend image.
DOCKER_BUILDKIT=0 docker build --quiet --label "$label=$fingerprint" --tag "$image" "$ctx" >/dev/null 2>"$ctx.log" ||
	die "docker build of $image failed: $(cat "$ctx.log")"
current="$(docker image inspect --format '{{.Id}}' "$image")"
# The image it replaces is now untagged; drop it unless a container uses it.
if [ -n "$previous" ] && [ "$previous" != "$current" ]; then
	docker image rm "$previous" >/dev/null 2>&1 || true
fi
echo "built $image (${current:7:12}) from $bin (mosquitto ${version:-unknown}), context $ctx"
