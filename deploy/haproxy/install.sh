#!/usr/bin/env bash
# Installs the L7 proxy (Debian package haproxy) the replica tests and benchmarks run behind.
# Idempotent: a no-op when haproxy is on PATH. `make test` and .ci/run call it, so a fresh Debian machine gets
# it as root (or through `sudo -n` when that needs no password); otherwise it says what to install and fails.
set -euo pipefail
if command -v haproxy >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        exec sudo -n bash "$0" "$@"
    fi
    echo "install.sh: haproxy is missing and the tests need it; run this script as root or install the Debian" \
         "package haproxy (apt-get install haproxy)" >&2
    exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install.sh: haproxy is missing and apt-get is not here; install haproxy with this system's packages" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
# the package would start a system service on its default config; the project runs its own instances. Where
# no policy says otherwise, forbid service starts for this install (policy-rc.d exit 101), then remove it.
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod 755 "$policy"
    trap 'rm -f "$policy"' EXIT
fi
apt-get update -qq
apt-get install -y -qq --no-install-recommends haproxy >/dev/null
if command -v systemctl >/dev/null 2>&1; then systemctl disable --now haproxy >/dev/null 2>&1 || true; fi
command -v haproxy >/dev/null
