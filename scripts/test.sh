#!/usr/bin/env bash
# The project's test command (README, and .ci/run calls it). As root it installs everything the
# tests need on a fresh Debian machine, then runs: the C core's own test program (plain and under
# ASan/UBSan), ruff, and the pytest suite against the installed package.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
    echo "test.sh: needs root (packages, network namespaces, TUN); run it with sudo" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
test_packages=(wireguard-go wireguard-tools iperf3 iproute2 nftables gcc make libc6-dev
               python3-venv python3-dev libssl3 procps)
missing=()
for p in "${test_packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
# The stronger baseline (Debian 13's wireguard-go with offloads), where shared/ is beside us.
if [ -f ../shared/tools/wireguard-go-offload.sh ]; then
    bash ../shared/tools/wireguard-go-offload.sh
fi

WGFAST_EXTRAS=test bash scripts/install.sh
venv=${WGFAST_PREFIX:-/opt/wgfast}

echo "== C core: standalone tests"
make -s -C csrc clean
make -s -C csrc test
echo "== C core: standalone tests under ASan + UBSan"
make -s -C csrc sanitize
echo "== C core: standalone tests under ThreadSanitizer"
make -s -C csrc tsan
echo "== the extension under ASan + UBSan (C-facing Python tests, a short packet fuzz)"
PYTHON="$venv/bin/python" bash scripts/sanitize.sh

echo "== ruff"
"$venv/bin/ruff" check wgfast tests bench examples

echo "== pytest"
# From inside tests/ with the venv's pytest, so that the installed, compiled package is what
# every test and every daemon it starts (`python -m wgfast.daemon`) imports, not the source tree.
(cd tests && "$venv/bin/pytest" -p no:cacheprovider . "$@")

echo '== benchmarks, once each as a smoke test (figures come from wgfast bench)'
(cd bench && "$venv/bin/pytest" -p no:cacheprovider -q . --benchmark-disable)
