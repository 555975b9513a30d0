#!/usr/bin/env bash
# Installs what the real-process tests (tier 3) need, from Debian packages:
# a SIP registrar (kamailio), a SIP test peer (sipp), network namespaces and
# firewall rules (iproute2, nftables), a headless browser (chromium), and
# what boots the Debian package under a real systemd (systemd-container for
# systemd-nspawn, mmdebstrap for the Debian tree it boots), and promtool,
# which checks and unit-tests the fleet alert rules (Debian ships it in the
# package prometheus, which also installs a Prometheus server service).
# Safe to run again: it installs only what is missing. Needs root or sudo.
set -euo pipefail

declare -A need=(
  [kamailio]=kamailio
  [kamcmd]=kamailio
  [sipp]=sip-tester
  [nft]=nftables
  [iptables]=iptables
  [ip]=iproute2
  [ping]=iputils-ping
  [arping]=arping
  [chromium]=chromium
  [systemd-nspawn]=systemd-container
  [mmdebstrap]=mmdebstrap
  [nsenter]=util-linux
  [promtool]=prometheus
)
missing=()
for bin in "${!need[@]}"; do
  command -v "$bin" >/dev/null 2>&1 || missing+=("${need[$bin]}")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "test tools: all present"
  exit 0
fi
pkgs=$(printf '%s\n' "${missing[@]}" | sort -u | tr '\n' ' ')
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
    echo "test tools missing ($pkgs) and not root: tier-3 tests will skip" >&2
    exit 0
  fi
fi
echo "test tools: installing $pkgs"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $pkgs >/dev/null
