#!/bin/sh
# tcpfo's container entrypoint: before a bridge starts (tcpfo primary or
# secondary), check what the container must give it, and say what is missing
# and which `docker run` option gives it; then exec tcpfo. Other commands
# (status, check-config, switchover, ...) run as they are.
#
#   TCPFO_SKIP_CHECKS=1   skip the checks (exec tcpfo at once)
#   TCPFO_CHECK_ONLY=1    check, then exit (0: nothing missing) instead of starting
set -u

case "${1:-}" in
  primary | secondary) ;;
  *) exec tcpfo "$@" ;;
esac
[ "${TCPFO_SKIP_CHECKS:-0}" = 1 ] && exec tcpfo "$@"

missing=0
say() {
  echo "tcpfo-entrypoint: $*" >&2
}
need() {
  say "missing: $*"
  missing=1
}

# Capabilities, from the effective set (hex) of this process.
capeff=$(sed -n 's/^CapEff:[[:space:]]*//p' /proc/self/status)
has_cap() {
  # bit $1 of the 64-bit mask
  [ $(((0x$capeff >> $1) & 1)) -eq 1 ]
}
has_cap 12 || need "CAP_NET_ADMIN (--cap-add NET_ADMIN): rules, queues, addresses, sysctls"
has_cap 13 || need "CAP_NET_RAW (--cap-add NET_RAW): raw and packet sockets"
has_cap 39 || say "without CAP_BPF (--cap-add BPF) the primary translates and merges in the queue (slower)"
has_cap 23 || say "without CAP_SYS_NICE (--cap-add SYS_NICE) the ARP answers and heartbeats run without real-time priority: a busy host may be taken for dead"
has_cap 38 || say "without CAP_PERFMON (--cap-add PERFMON) kernels before 6.14 refuse the primary's programs (the queue does their work)"

# /proc/sys: the bridge sets sysctls; Docker mounts it read-only.
if ! [ -w /proc/sys/net/ipv4/tcp_fwmark_accept ] || ! (: >>/proc/sys/net/ipv4/tcp_fwmark_accept) 2>/dev/null; then
  need "a writable /proc/sys (--security-opt systempaths=unconfined)"
fi

# The host's network: the node's own interfaces, routes and netfilter.
if [ "$(grep -c ':' /proc/net/dev)" -le 1 ]; then
  need "the host's network (--network host): this container sees only lo"
fi

# The state directory outlives the container (a restarted bridge undoes a killed one's rules from it).
if ! grep -q ' /run/tcpfo ' /proc/self/mountinfo; then
  say "/run/tcpfo is not mounted from the host (-v /run/tcpfo:/run/tcpfo): a killed bridge's rules are then undone only by tcpfo cleanup on the host"
fi

# The primary pins its netfilter match in the host's bpffs (merge: kernel).
if ! grep -q ' /sys/fs/bpf .* - bpf ' /proc/self/mountinfo; then
  say "no bpffs at /sys/fs/bpf (-v /sys/fs/bpf:/sys/fs/bpf): the primary releases primary-only connections in the queue"
fi

# A stop must reach the bridge (tcpfo's own stop undoes its rules): PID 1 must pass SIGTERM on and reap children.
if [ "$$" = 1 ]; then
  say "running as PID 1: run with --init (children reaped, signals passed on)"
fi

if [ "$missing" = 1 ]; then
  say "not starting; see the head of the Dockerfile for the whole docker run line"
  exit 78
fi
[ "${TCPFO_CHECK_ONLY:-0}" = 1 ] && exit 0
exec tcpfo "$@"
