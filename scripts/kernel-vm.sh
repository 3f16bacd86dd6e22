#!/usr/bin/env bash
# Runs a command as root inside a virtual machine that boots Debian 12's own
# kernel (6.1, the `linux-image-amd64` of the archive), so that the kernel paths
# are tried on the kernel most users run, not only on this machine's.
#
#   scripts/kernel-vm.sh [--kernel PACKAGE] [--mem MB] [--cpus N] [--timeout S] [--logs DIR] -- COMMAND...
#
# e.g. scripts/kernel-vm.sh -- npx vitest run test/rig/replication.test.ts
#
# The VM's root filesystem is this machine's own, read-only over virtio-9p,
# under an overlay in the VM's memory: the command sees this checkout, its
# node_modules and dist/, and whatever it writes is gone when the VM stops.
# The kernel's package is downloaded (apt-get download) and unpacked once into
# $TCPFO_VM_CACHE (default /var/cache/tcpfo-vm); qemu, busybox-static and kmod
# are installed if missing. Plain emulation (TCG): KVM is not needed, and is not
# used; everything runs ~10-30 times slower than on the host. The exit status is
# the command's (124 on --timeout, 125 if the VM did not report one). --logs DIR
# keeps the logs of every test rig the command made (TCPFO_RIG_KEEP_LOGS) in DIR.
#
# Inside the VM (this script again, as the second stage of its init):
# /proc, /sys, /dev, /run and bpffs are mounted, the kernel's modules are
# those of the package, and lo is up; the command runs in the directory it was
# started from, with CI and TCPFO_* from the caller's environment.
set -euo pipefail

if [ "${1:-}" = "--inside" ]; then
  # Second stage: PID 1 in the VM, on the overlay root.
  export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root
  mount -t proc proc /proc
  mount -t sysfs sys /sys
  mount -t devtmpfs dev /dev 2>/dev/null || true
  mkdir -p /dev/pts /dev/shm
  mount -t devpts devpts /dev/pts
  mount -t tmpfs tmpfs /dev/shm
  mount -t tmpfs tmpfs /run
  # /tmp stays the host's, under the overlay: a checkout there (a CI clone) is seen.
  mount -t bpf bpf /sys/fs/bpf
  mount -t cgroup2 cgroup2 /sys/fs/cgroup 2>/dev/null || true
  mkdir -p /run/netns /var/run
  ln -sfn /run /var/run 2>/dev/null || true
  ip link set lo up
  hostname tcpfo-vm
  job=/run/tcpfo-vm-job
  mkdir -p "$job"
  mount -t 9p -o trans=virtio,version=9p2000.L job "$job"
  # shellcheck source=/dev/null
  . "$job/env"
  echo "tcpfo-vm: kernel $(uname -r), $(nproc) CPUs; running: ${TCPFO_VM_CMD[*]}"
  set +e
  # Through a pipe: the console is a terminal, and tools that see one redraw their progress.
  (cd "$TCPFO_VM_CWD" && exec "${TCPFO_VM_CMD[@]}") </dev/null 2>&1 | cat
  rc=${PIPESTATUS[0]}
  set -e
  echo "$rc" >"$job/rc"
  sync
  umount "$job" 2>/dev/null || true
  echo "tcpfo-vm: command exited $rc"
  echo b >/proc/sysrq-trigger
  sleep 10
  exit 0
fi

KERNEL_PKG=""
MEM=6144
CPUS=2
TIMEOUT=3600
LOGS=""
while [ $# -gt 0 ]; do
  case "$1" in
    --kernel) KERNEL_PKG="$2"; shift 2 ;;
    --mem) MEM="$2"; shift 2 ;;
    --cpus) CPUS="$2"; shift 2 ;;
    --timeout) TIMEOUT="$2"; shift 2 ;;
    --logs) LOGS="$2"; shift 2 ;;
    --) shift; break ;;
    -h|--help) sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) break ;;
  esac
done
if [ $# -eq 0 ]; then
  echo "usage: $0 [--kernel PACKAGE] [--mem MB] [--cpus N] [--timeout S] -- COMMAND..." >&2
  exit 2
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "kernel-vm: needs root (apt-get, the VM's cache, and the command runs as root inside)" >&2
  exit 2
fi

need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
[ -x /bin/busybox ] && /bin/busybox --list 2>/dev/null | grep -qx switch_root || need+=(busybox-static)
command -v depmod >/dev/null || need+=(kmod)
command -v cpio >/dev/null || need+=(cpio)
if [ "${#need[@]}" -gt 0 ]; then
  echo "kernel-vm: installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# The kernel: Debian's default image for this release, unless one is named.
if [ -z "$KERNEL_PKG" ]; then
  KERNEL_PKG="$(apt-cache depends linux-image-amd64 2>/dev/null | sed -n 's/^ *Depends: \(linux-image-[0-9].*\)$/\1/p' | head -1)"
  if [ -z "$KERNEL_PKG" ]; then
    apt-get update -qq
    KERNEL_PKG="$(apt-cache depends linux-image-amd64 | sed -n 's/^ *Depends: \(linux-image-[0-9].*\)$/\1/p' | head -1)"
  fi
  [ -n "$KERNEL_PKG" ] || { echo "kernel-vm: the archive names no linux-image-amd64 kernel" >&2; exit 2; }
fi
KVER="${KERNEL_PKG#linux-image-}"
KVER="${KVER%-unsigned}"
CACHE="${TCPFO_VM_CACHE:-/var/cache/tcpfo-vm}/$KVER"
if [ ! -f "$CACHE/ready" ]; then
  echo "kernel-vm: fetching $KERNEL_PKG"
  rm -rf "$CACHE"
  mkdir -p "$CACHE/deb"
  (cd "$CACHE/deb" && { apt-get download "$KERNEL_PKG-unsigned" 2>/dev/null || apt-get download "$KERNEL_PKG" 2>/dev/null || { apt-get update -qq && apt-get download "$KERNEL_PKG-unsigned"; }; })
  dpkg-deb -x "$CACHE"/deb/*.deb "$CACHE/root"
  rm -rf "$CACHE/deb"
  depmod -b "$CACHE/root" "$KVER"
  # The first stage: busybox, the modules that mount the host's root, the init.
  ird="$CACHE/initrd.d"
  mkdir -p "$ird"/{bin,proc,sys,dev,host,rw,newroot}
  cp /bin/busybox "$ird/bin/busybox"
  # The modules that mount the host's root, with what they need (modules.dep), for busybox's modprobe.
  mods="$CACHE/root/lib/modules/$KVER"
  mkdir -p "$ird/lib/modules/$KVER"
  for m in virtio_pci 9pnet_virtio 9p overlay; do
    sed -n "s|^\(kernel/[^:]*/$m\.ko\):\(.*\)|\1\2|p" "$mods/modules.dep" | head -1
  done | tr ' ' '\n' | sort -u | while read -r f; do
    [ -n "$f" ] || continue
    mkdir -p "$ird/lib/modules/$KVER/$(dirname "$f")"
    cp "$mods/$f" "$ird/lib/modules/$KVER/$f"
  done
  (cd "$ird/lib/modules/$KVER" && grep -E "^($(cd "$ird/lib/modules/$KVER" && find kernel -name '*.ko' | paste -sd'|')):" "$mods/modules.dep" >modules.dep)
  cat >"$ird/init" <<'EOF'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in virtio_pci 9pnet_virtio 9p overlay; do modprobe "$m" || echo "init: modprobe $m failed"; done
mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144,ro host /host || { echo "init: cannot mount the host's root"; echo b >/proc/sysrq-trigger; }
mount -t tmpfs -o size=75% tmpfs /rw
mkdir -p /rw/upper /rw/work
mount -t overlay overlay -o lowerdir=/host,upperdir=/rw/upper,workdir=/rw/work /newroot
kver="$(uname -r)"
mkdir -p "/newroot/lib/modules/$kver"
mount --bind "/host$(cat /cachedir)/root/lib/modules/$kver" "/newroot/lib/modules/$kver"
umount /proc /sys /dev
exec switch_root /newroot /bin/bash "$(cat /script)" --inside
EOF
  chmod 755 "$ird/init"
  echo "$CACHE" >"$ird/cachedir"
  touch "$CACHE/ready"
fi
# The script's own path goes into the initrd each run (the checkout may move).
ird="$CACHE/initrd.d"
readlink -f "$0" >"$ird/script"
job="$(mktemp -d /tmp/tcpfo-vm.XXXXXX)"
qpid=""
cleanup() {
  [ -n "$qpid" ] && kill "$qpid" 2>/dev/null && wait "$qpid" 2>/dev/null
  rm -rf "$job"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
(cd "$ird" && find . | cpio -o -H newc --quiet) | gzip -1 >"$job/initrd.gz"
{
  printf 'TCPFO_VM_CWD=%q\n' "$PWD"
  # The rig's waits (rig/slow.ts): emulation is about ten times slower.
  printf 'export TCPFO_RIG_TIME_SCALE=%q\n' "${TCPFO_RIG_TIME_SCALE:-10}"
  [ -n "$LOGS" ] && printf 'export TCPFO_RIG_KEEP_LOGS=/run/tcpfo-vm-job/logs\n'
  printf 'TCPFO_VM_CMD=('; printf '%q ' "$@"; printf ')\n'
  for v in CI $(compgen -e | grep '^TCPFO_' | grep -v '^TCPFO_VM_' || true); do
    [ -n "${!v:-}" ] && printf 'export %s=%q\n' "$v" "${!v}"
  done
} >"$job/env"

echo "kernel-vm: booting $KVER (TCG, $CPUS CPUs, $MEM MB)"
timeout -k 10 "$TIMEOUT" qemu-system-x86_64 -accel tcg,thread=multi -cpu max -smp "$CPUS" -m "$MEM" -nographic -no-reboot \
  -kernel "$CACHE/root/boot/vmlinuz-$KVER" -initrd "$job/initrd.gz" \
  -append "console=ttyS0 quiet loglevel=3 panic=-1 mitigations=off" \
  -virtfs local,path=/,mount_tag=host,security_model=none,readonly=on,multidevs=remap \
  -virtfs local,path="$job",mount_tag=job,security_model=none,multidevs=remap \
  -nic none </dev/null &
qpid=$!
qrc=0
wait "$qpid" || qrc=$?
qpid=""
if [ -n "$LOGS" ] && [ -d "$job/logs" ]; then
  mkdir -p "$LOGS"
  cp -r "$job/logs/." "$LOGS/"
  echo "kernel-vm: the rigs' logs are in $LOGS"
fi
if [ "$qrc" -eq 124 ]; then
  echo "kernel-vm: stopped after --timeout $TIMEOUT s" >&2
  exit 124
fi
if [ -f "$job/rc" ]; then
  exit "$(cat "$job/rc")"
fi
echo "kernel-vm: the VM stopped without the command's exit status" >&2
exit 125
