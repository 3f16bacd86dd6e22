#!/usr/bin/env bash
# Installs the Debian 12 packages tcpfo needs.
#
#   scripts/setup-system.sh            what a node running tcpfo needs (the daemon and its native parts' build)
#   scripts/setup-system.sh --dev      that, and what the tests, the demo and the benchmarks need
#
# Idempotent: re-running it only installs what is missing. Services that the
# --dev packages bring (vsftpd, memcached, redis, prometheus) are not started: the
# tests and benches run their own, each in a network namespace.
set -euo pipefail
RUNTIME=(
  iproute2 nftables iptables kmod procps        # links, addresses, rules, sysctls
  libpcap-dev                                   # capture (npm cap builds against libpcap)
  libnetfilter-queue-dev libmnl-dev             # the NFQUEUE addon
  libbpf-dev clang llvm                         # the primary's inbound translation (a tc BPF program)
  python3 make g++                              # node-gyp
)
DEV=(
  psmisc iputils-ping ethtool tcpdump           # the test rig's namespaces and captures
  socat curl vsftpd ftp                         # real clients and servers for the tests
  stress-ng memcached redis-server              # benches: the soak beside a CPU hog, request/answer workloads
  libfaketime                                   # tests: wall-clock steps under a running bridge
  bpftool                                       # tests: the tc programs load with a promoted bridge's capabilities
  prometheus systemd                            # promtool and systemd-analyze check deploy/
  qemu-system-x86 busybox-static cpio           # scripts/kernel-vm.sh: Debian 12's own kernel in a VM
)
case "${1:-}" in
  "") PACKAGES=("${RUNTIME[@]}") ;;
  --dev) PACKAGES=("${RUNTIME[@]}" "${DEV[@]}") ;;
  *) echo "usage: $0 [--dev]" >&2; exit 2 ;;
esac
# Node.js: the npm registry's, not Debian 12's (18). Said, not installed: the node may run others.
node_major="$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)"
if [ "$node_major" -lt 22 ]; then
  echo "setup-system: Node.js ${node_major/#0/(none)} found; tcpfo supports 22 and 24 LTS (nodejs.org or NodeSource;" \
    "or prefix a command with scripts/with-node.sh 22 --, which takes one from the npm registry)" >&2
fi
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -eq 0 ]; then
  echo "setup-system: all packages present"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "setup-system: need root to install: ${missing[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
# Keep the packages' own daemons from starting (invoke-rc.d asks policy-rc.d),
# unless the machine already has a policy of its own.
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
  trap 'rm -f "$policy"' EXIT
  printf '#!/bin/sh\nexit 101\n' >"$policy"
  chmod 755 "$policy"
fi
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "setup-system: installed ${missing[*]}"
