#!/usr/bin/env bash
# Installs the Debian packages swarmd's demo and tests need, only those that are missing,
# so a second run is a no-op. Must run as root on Debian (or a derivative).
set -euo pipefail

# command -> package that provides it
declare -A NEED=(
  [dockerd]=docker.io
  [etcd]=etcd-server
  [etcdctl]=etcd-client
  [busybox]=busybox-static
  [docker-registry]=docker-registry
  [ip]=iproute2
  [docker-compose]=docker-compose
  [make]=make
  [curl]=curl
  [systemd-analyze]=systemd
  [prometheus]=prometheus
  [chromium]=chromium
  [chromedriver]=chromium-driver
)
missing=()
for cmd in "${!NEED[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${NEED[$cmd]}")
done
# busybox-static specifically: the dynamic busybox cannot run in an empty rootfs.
if command -v busybox >/dev/null 2>&1 && ! dpkg -s busybox-static >/dev/null 2>&1; then
  missing+=(busybox-static)
fi
python3 -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3-venv)

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "bootstrap: need root to install: ${missing[*]}" >&2
  exit 1
fi
echo "bootstrap: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
# The packaged engine must not grab the default socket on its own: the lab runs its own engines.
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
  systemctl disable --now docker.service docker.socket >/dev/null 2>&1 || true
fi
