#!/usr/bin/env bash
# Installs wgfast on Debian 12/13 as root: build packages from apt, a virtual environment (PEP 668
# forbids pip into the system Python) at $WGFAST_PREFIX (default /opt/wgfast), and links of the
# `wgfast` and `wgfastd` commands into /usr/local/bin so that `sudo` and `wg-quick` find them,
# and the systemd units into /etc/systemd/system when that directory exists.
#   WGFAST_EXTRAS=test  also installs the test dependencies into the environment.
set -euo pipefail
cd "$(dirname "$0")/.."

prefix=${WGFAST_PREFIX:-/opt/wgfast}
python=${PYTHON:-python3}

if [ "$(id -u)" -ne 0 ]; then
    echo "install.sh: needs root (apt-get, $prefix, /usr/local/bin); run it with sudo" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
apt_packages=(gcc make libc6-dev python3-venv python3-dev libssl3
              wireguard-tools wireguard-go iproute2 iperf3)
missing=()
for p in "${apt_packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    apt-get update -q
    # --no-install-recommends: otherwise apt also drags in a kernel image.
    apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

if [ ! -x "$prefix/bin/python" ]; then
    "$python" -m venv "$prefix"
fi
"$prefix/bin/python" -m pip install -q --upgrade pip
spec="."
[ -n "${WGFAST_EXTRAS:-}" ] && spec=".[${WGFAST_EXTRAS}]"
"$prefix/bin/python" -m pip install -q "$spec"

for cmd in wgfast wgfastd; do
    if [ -x "$prefix/bin/$cmd" ]; then
        ln -sf "$prefix/bin/$cmd" "/usr/local/bin/$cmd"
    fi
done
# wgfast@NAME.service (as wg-quick@), the endpoint re-resolution timer and the Prometheus
# exporter (wgfast-exporter.service), where systemd is.
if [ -d /etc/systemd/system ]; then
    install -m 0644 systemd/wgfast@.service systemd/wgfast-reresolve@.service \
        systemd/wgfast-reresolve@.timer systemd/wgfast-exporter.service /etc/systemd/system/
    if [ -d /run/systemd/system ]; then
        systemctl daemon-reload
    fi
fi
echo "wgfast installed in $prefix; commands linked into /usr/local/bin"
