#!/usr/bin/env bash
# Installs the L7 proxy (Debian package haproxy) the replica tests and benchmarks run behind.
# Idempotent and fast when already installed; .ci/run calls it so a fresh CI machine has it too.
set -euo pipefail
if command -v haproxy >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "install.sh: haproxy is missing; run as root (apt-get) or install the Debian package haproxy" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends haproxy >/dev/null
# the package starts a system service on its default config; the project runs its own instances
if command -v systemctl >/dev/null 2>&1; then systemctl disable --now haproxy >/dev/null 2>&1 || true; fi
command -v haproxy >/dev/null
