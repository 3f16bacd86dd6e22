#!/usr/bin/env bash
# Installs the Debian 12 packages tcpfo, its tests, the demo and the benchmarks need.
# Idempotent: re-running it only installs what is missing.
set -euo pipefail
PACKAGES=(
  iproute2 iptables nftables kmod procps psmisc iputils-ping ethtool  # namespaces, links, rules, sysctls
  tcpdump libpcap-dev                            # capture (npm cap builds against libpcap)
  libnetfilter-queue-dev libmnl-dev              # the NFQUEUE addon
  python3 make g++                               # node-gyp
  clang llvm libbpf-dev                          # the primary's inbound translation (a tc BPF program)
  socat curl vsftpd ftp                          # real clients and servers for the tests
  stress-ng memcached                            # benches: the soak beside a CPU hog, request/answer workloads
)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup-system: need root to install: ${missing[*]}" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
# vsftpd's package may start a system-wide daemon on port 21; tests run their own per namespace.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet vsftpd 2>/dev/null; then
  systemctl stop vsftpd || true
  systemctl disable vsftpd || true
fi
echo "setup-system: all packages present"
